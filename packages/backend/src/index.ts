export type {
  HostBlockDevice,
  IoResult,
  IoError,
  ReadResult,
  IntegrityProfile,
  PiBuffer,
  PiCheck,
} from './block-device.ts';
export { MemoryBlockDevice, type MemoryDeviceOptions } from './memory-device.ts';
export { Toolstack, type VbdSpec } from './toolstack.ts';
export { BlkbackDriver, type BlkbackOptions, type DeviceResolver } from './blkback/driver.ts';
export { VbdBackend } from './blkback/vbd.ts';
export { DEFAULT_BLKBACK_CONFIG, type BlkbackConfig } from './blkback/config.ts';
export type { BlkbackStats } from './blkback/stats.ts';
export { HostDisks, type HostDisk } from './disks.ts';
export { runHost, type HostProcessOptions } from './host.ts';
export { parseScsiDebugParams, storeBlocks, type ScsiDebugParams } from './scsi/params.ts';
