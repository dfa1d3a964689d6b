export { Hypervisor, type Envelope, type Interposer, type HypervisorOptions } from './core/hypervisor.ts';
export { Domain, type Session } from './core/domain.ts';
export { Connection, IN_HIGH, IN_HIGH_BYTES, type FrameTransport } from './connection.ts';
export { LocalHypervisor } from './local.ts';
export {
  startHypervisorServer,
  wsFrameTransport,
  type RunningHypervisor,
  type HypervisorServerOptions,
} from './server.ts';
export { XenStore } from './xenstore/index.ts';
export { runHypervisor, type HypervisorProcessOptions } from './main.ts';
export {
  Nemesis,
  type Injection,
  type NemesisAction,
  NEMESIS_ACTIONS,
  MESSAGE_KINDS,
  MAX_HELD_INBOUND,
  MAX_HELD_OUTBOUND,
} from './nemesis.ts';
export { Prng, FaultAttr, parseFaultAttr, type FaultAttrSpec } from './nemesis-attr.ts';
export { nemesisOf } from './nemesis-routes.ts';
