/**
 * XenBus device states (io/xenbus.h), the XenStore layout of a vbd, and the virtual-device numbers
 * of xen-vbd-interface(7). Values read from XenStore are untrusted strings: the parsers return a
 * typed result naming what is wrong instead of throwing.
 */

export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;
export type XenbusState = (typeof XenbusState)[keyof typeof XenbusState];

const STATE_NAMES = [
  'Unknown',
  'Initialising',
  'InitWait',
  'Initialised',
  'Connected',
  'Closing',
  'Closed',
  'Reconfiguring',
  'Reconfigured',
] as const;

export function xenbusStateName(s: number): string {
  return STATE_NAMES[s] ?? `invalid(${s})`;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A decimal unsigned integer as XenStore holds it ("4", not "04" nor " 4" nor "0x4"). */
export function parseXsUint(raw: string | null | undefined, key: string, max = 0xffffffff): Parsed<number> {
  if (raw === null || raw === undefined) return { ok: false, error: `${key}: missing` };
  if (!/^(0|[1-9][0-9]*)$/.test(raw)) return { ok: false, error: `${key}: "${raw}" is not a decimal number` };
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v > max)
    return { ok: false, error: `${key}: ${raw} is out of range (max ${max})` };
  return { ok: true, value: v };
}

/** `state` node: a XenbusState 0..8 in decimal. */
export function parseXenbusState(raw: string | null | undefined, key = 'state'): Parsed<XenbusState> {
  const n = parseXsUint(raw, key, 8);
  return n.ok ? { ok: true, value: n.value as XenbusState } : n;
}

/** A boolean feature flag: "0" or "1"; absent means the default. */
export function parseXsBool(raw: string | null | undefined, key: string, dflt = false): Parsed<boolean> {
  if (raw === null || raw === undefined) return { ok: true, value: dflt };
  const n = parseXsUint(raw, key);
  if (!n.ok) return n;
  return { ok: true, value: n.value !== 0 };
}

/** Keys of the blkif handshake (io/blkif.h), grouped by who writes them. */
export const BlkifKey = {
  // toolstack, both directories
  backend: 'backend',
  backendId: 'backend-id',
  frontend: 'frontend',
  frontendId: 'frontend-id',
  state: 'state',
  virtualDevice: 'virtual-device',
  deviceType: 'device-type',
  trusted: 'trusted',
  online: 'online',
  removable: 'removable',
  bootable: 'bootable',
  dev: 'dev',
  type: 'type',
  mode: 'mode',
  params: 'params',
  discardEnable: 'discard-enable',
  // backend
  featureMaxIndirectSegments: 'feature-max-indirect-segments',
  multiQueueMaxQueues: 'multi-queue-max-queues',
  maxRingPageOrder: 'max-ring-page-order',
  featureFlushCache: 'feature-flush-cache',
  featureBarrier: 'feature-barrier',
  featureDiscard: 'feature-discard',
  discardGranularity: 'discard-granularity',
  discardAlignment: 'discard-alignment',
  discardSecure: 'discard-secure',
  featurePersistent: 'feature-persistent',
  sectors: 'sectors',
  info: 'info',
  sectorSize: 'sector-size',
  physicalSectorSize: 'physical-sector-size',
  // frontend
  ringRef: 'ring-ref',
  eventChannel: 'event-channel',
  ringPageOrder: 'ring-page-order',
  multiQueueNumQueues: 'multi-queue-num-queues',
  protocol: 'protocol',
} as const;

/**
 * The key holding the grant of ring page `page`: `ring-ref` when the frontend wrote no
 * `ring-page-order`, `ring-ref0..N-1` when it did — even for order 0 (Linux read_per_ring_refs'
 * multi_ref, QEMU's xen_block_connect). A frontend writes ring-page-order only for multi-page rings.
 */
export function ringRefKey(multiRef: boolean, page: number): string {
  return multiRef ? `ring-ref${page}` : 'ring-ref';
}

/** Per-queue directory when more than one queue is used. */
export function queueDir(queue: number): string {
  return `queue-${queue}`;
}

/** xs_get_domain_path(): a domain's home in the store. */
export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

/** Where a frontend's vbds are: one directory per devid. */
export function vbdFrontendDir(frontDomid: number): string {
  return `${domainPath(frontDomid)}/device/vbd`;
}

/** Where a backend domain's vbds are: one directory per frontend domain, then per devid. */
export function vbdBackendDir(backDomid: number): string {
  return `${domainPath(backDomid)}/backend/vbd`;
}

export function frontendPath(frontDomid: number, devid: number): string {
  return `${vbdFrontendDir(frontDomid)}/${devid}`;
}

export function backendPath(backDomid: number, frontDomid: number, devid: number): string {
  return `${vbdBackendDir(backDomid)}/${frontDomid}/${devid}`;
}

/**
 * Virtual-device numbers (xen-vbd-interface(7)): xvd disks 0-15 with partitions 0-15 use
 * 202<<8 | disk<<4 | part, the rest the extended form 1<<28 | disk<<8 | part (disk < 2^20, part < 256).
 * xvda = 51712. Outside those ranges there is no number: a RangeError names the value.
 */
export function xvdDevid(disk: number, part = 0): number {
  if (!Number.isInteger(disk) || disk < 0 || disk >= 1 << 20)
    throw new RangeError(`xvd disk ${disk} is outside 0..${(1 << 20) - 1}`);
  if (!Number.isInteger(part) || part < 0 || part > 255)
    throw new RangeError(`xvd partition ${part} is outside 0..255`);
  if (disk < 16 && part < 16) return (202 << 8) | (disk << 4) | part;
  return (1 << 28) | (disk << 8) | part;
}

/** Disk letters as Linux names disks: 0 → a, 25 → z, 26 → aa (sd_format_disk_name). */
export function diskLetters(disk: number): string {
  let s = '';
  let n = disk;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return s;
}

/** 51712 → "xvda"; returns null for numbers that are not whole xvd disks. */
export function xvdName(devid: number): string | null {
  if (devid >>> 8 === 202 && (devid & 0xf) === 0) return `xvd${diskLetters((devid >> 4) & 0xf)}`;
  if ((devid & (1 << 28)) !== 0 && (devid & 0xff) === 0) return `xvd${diskLetters((devid >> 8) & 0xfffff)}`;
  return null;
}

/**
 * The inverse of diskLetters: "a" → 0, "z" → 25, "aa" → 26; null for anything but 1 to 6 letters
 * a-z (already past the extended xvd range of 2^20 disks, so no caller need handle larger).
 */
export function diskIndex(letters: string): number | null {
  if (!/^[a-z]{1,6}$/.test(letters)) return null;
  let v = 0;
  for (const ch of letters) v = v * 26 + (ch.charCodeAt(0) - 96);
  return v - 1;
}
