export { XenClient, type ClientTransport } from './client.ts';
export type {
  DomainInfo,
  DomctlOps,
  EndAccessResult,
  EventChannelOps,
  EventHandler,
  GrantTableOps,
  Hypercalls,
  Watch,
  XenStoreOps,
} from './hypercalls.ts';
export { Page, PagesRingMemory, type PageOrigin } from './memory.ts';
export { connectWs, wsTransport, WIRE_CLIENT_OPTIONS, type ConnectOptions } from './ws.ts';
export { RingEvents } from './ring-sync.ts';
export { xenbusSwitchState } from './xenbus-client.ts';
export { oneEventPending, type PendingWatch, type WatchQueue } from './watch-pending.ts';
