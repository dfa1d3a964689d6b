export {
  Blkfront,
  DEFAULT_BLKFRONT_OPTIONS,
  MAX_DISK_SECTORS,
  MAX_REQUESTS_PER_PUSH,
  PLUG_FLUSH_BYTES,
  type BlkfrontOptions,
  type BlkfrontStats,
} from './blkfront/device.ts';
export type * from './block/types.ts';
export { runDomu, type DomuOptions } from './domu.ts';
export {
  controlSocketAnswers,
  runInGuest,
  startControlServer,
  type ControlRequest,
  type ControlServer,
  type GuestCommandStreams,
} from './control.ts';
export * from './guest/fio-api.ts';
export { XenbusProbe, type XenbusHooks } from './xenbus-probe.ts';
export { GuestUserland } from './guest/userland.ts';
