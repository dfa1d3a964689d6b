export {
  Blkfront,
  DEFAULT_BLKFRONT_OPTIONS,
  type BlkfrontOptions,
  type BlkfrontStats,
} from './blkfront/device.ts';
export type * from './block/types.ts';
