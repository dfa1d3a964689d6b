/**
 * The host's storage stack inside the backend: scsi_debug-like target, its store, and Linux's `sd`
 * on top, which blkback uses as its HostBlockDevice.
 */
export * from './params.ts';
export * from './cdb.ts';
export * from './sense.ts';
export * from './store.ts';
export * from './scsi-debug.ts';
export * from './sd.ts';
