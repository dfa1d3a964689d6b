export { XenClient, type ClientTransport, type DomainInfo, type EventHandler, type Watch } from './client.ts';
export { Page, PagesRingMemory, type PageOrigin } from './memory.ts';
export { connectWs, wsTransport, type ConnectOptions } from './ws.ts';
export { BarrierNotifier, finalCheckWithBarrier } from './ring-sync.ts';
