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
export { Toolstack, type VbdSpec, type VbdInfo } from './toolstack.ts';
export type { DomInfo } from './observe.ts';
export { BlkbackDriver, type BlkbackOptions, type DeviceResolver } from './blkback/driver.ts';
export { VbdBackend } from './blkback/vbd.ts';
export { DEFAULT_BLKBACK_CONFIG, type BlkbackConfig } from './blkback/config.ts';
export type { BlkbackStats } from './blkback/stats.ts';
export {
  HostDisks,
  DEFAULT_DISK_LAYOUT,
  sdDevt,
  sdIndex,
  storageError,
  type HostDisk,
  type DiskLayout,
  type ParamChange,
} from './disks.ts';
export {
  DEFAULT_HOST_QUOTAS,
  QUOTA_SETTINGS,
  parseByteSize,
  formatBytes,
  diskBytes,
  checkNewDisk,
  checkGuestCount,
  type HostQuotas,
} from './quota.ts';
export { authenticate, HTTP_STATUS, type Principal, type ApiCredentials } from './api.ts';
export { runHost, explainClose, type HostProcessOptions } from './host.ts';
export {
  parseDiskSpec,
  diskToJson,
  checkPvblkDisk,
  vdevNumber,
  DiskSpecError,
  SCSI_DEBUG_TARGET,
  type XlDisk,
  type PvblkDisk,
} from './xl-disk-spec.ts';
export type { LsNode, XsRequest, XsResult } from './xenstore-ops.ts';
export {
  DEFAULT_SCSI_DEBUG_PARAMS,
  formatScsiDebugParams,
  parseScsiDebugParams,
  storeBlocks,
  capacityBlocks,
  type ScsiDebugParams,
} from './scsi/index.ts';
export { runDriverDomain, type DriverDomainOptions } from './driver-domain.ts';
export { DriverDomains, PLACEMENTS, placementFromEnv, type Placement } from './driver-domains.ts';
export { BlockHotplug } from './hotplug.ts';
export { partitionProblem } from './partition.ts';
