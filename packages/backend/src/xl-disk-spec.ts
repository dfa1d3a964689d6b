/**
 * xl's disk specification (xl-disk-configuration(5)), parsed as libxlu's lexer (libxlu_disk_l.l)
 * parses it, and the vdev numbering of xen-vbd-interface(7) (libxl__device_disk_dev_number).
 *
 * A spec is comma-separated keyword parameters, flags and positional parameters (target, format,
 * vdev, access, in that order); `target=` eats the rest of the string; the deprecated prefixes
 * (`phy:`, `raw:`, `iscsi:` …) are understood. Several strings (xl block-attach's arguments) add to
 * one disk. Errors are reported with xlu__disk_err's wording: "config parsing error in disk
 * specification: <what>: near `<token>' in `<spec>'".
 *
 * pvblk's rules for what it can attach (`checkPvblkDisk`) are separate: the parse is xl's, whatever
 * the backend.
 */
import { diskIndex, PvblkError, xvdDevid } from '@pvblk/shared';

export interface XlDisk {
  /** pdev_path: null when never given, "" when given empty. */
  target: string | null;
  vdev: string | null;
  /** backendtype=: phy, tap, qdisk, standalone. */
  backendType: string | null;
  /** backend=: the backend domain's name. */
  backendDomain: string | null;
  format: string;
  script: string | null;
  readwrite: boolean;
  isCdrom: boolean;
  removable: boolean;
  directIoSafe: boolean;
  discard: boolean | null;
  trusted: boolean | null;
  specification: string | null;
  colo: boolean | null;
  grantUsage: boolean | null;
}

/** What `source: config parsing error …` names: xl uses "command line" for block-attach. */
export class DiskSpecError extends PvblkError {
  constructor(readonly lines: string[]) {
    super('EINVAL', lines.join('\n'));
  }
}

const FORMATS = ['raw', 'qcow', 'qcow2', 'vhd', 'empty', 'qed'];
const BACKEND_TYPES = ['phy', 'tap', 'qdisk', 'standalone'];
const FLAG_NAMES = [
  'cdrom',
  'direct-io-safe',
  'discard',
  'no-discard',
  'colo',
  'no-colo',
  'trusted',
  'untrusted',
];
const STRING_KEYS = ['backend', 'vdev', 'script', 'colo-host', 'colo-export', 'active-disk', 'hidden-disk'];

interface Ctx {
  disk: XlDisk;
  spec: string;
  source: string;
  /** The first MAX_ERRORS messages; errorCount counts them all. */
  errors: string[];
  errorCount: number;
  hadDeprPrefix: boolean;
  accessSet: boolean;
  /** libxl keeps the string keys it does not model; we keep them only to detect respecification. */
  strings: Map<string, string>;
}

/**
 * xl prints each error as its lexer meets it, each quoting the whole spec; we collect them into one
 * message instead, where, unbounded, a spec of thousands of bad parameters (`a=b,` × 16000) would
 * build gigabytes of text and overflow a string. The bounds: the first MAX_ERRORS errors, enough to see
 * what is wrong (later ones are mostly the same mistake repeated), then a count of the rest; and at
 * most QUOTE_MAX characters of the spec or of the erroneous text in each, which is room for any
 * real spec's parameters (a target path is rarely longer) and still names the spec.
 */
export const MAX_ERRORS = 20;
export const QUOTE_MAX = 256;

const quote = (s: string) =>
  s.length <= QUOTE_MAX ? s : `${s.slice(0, QUOTE_MAX)}… (${s.length - QUOTE_MAX} more characters)`;

function err(c: Ctx, erroneous: string | null, message: string): void {
  c.errorCount++;
  if (c.errors.length >= MAX_ERRORS) return;
  c.errors.push(
    `${c.source}: config parsing error in disk specification: ${message}` +
      (erroneous !== null ? `: near \`${quote(erroneous)}'` : '') +
      ` in \`${quote(c.spec)}'`,
  );
}

/** Throws the errors collected so far, with a last line counting those not shown. */
function failIfErrors(c: Ctx): void {
  if (c.errorCount === 0) return;
  const more = c.errorCount - c.errors.length;
  throw new DiskSpecError(
    more > 0
      ? [
          ...c.errors,
          `${c.source}: config parsing error in disk specification: ${more} more error${more === 1 ? '' : 's'} not shown`,
        ]
      : c.errors,
  );
}

function setFormat(c: Ctx, v: string): void {
  const f = v === '' ? 'raw' : v;
  if (!FORMATS.includes(f)) return err(c, v, 'unknown value for format');
  if (c.disk.format !== 'unknown' && c.disk.format !== f) return err(c, v, 'format respecified');
  c.disk.format = f;
}

function setAccess(c: Ctx, v: string): void {
  if (v === 'r' || v === 'ro') c.disk.readwrite = false;
  else if (v === 'rw' || v === 'w' || v === '') c.disk.readwrite = true;
  else err(c, v, 'unknown value for access');
}

/** savestring(): a non-empty earlier value may not be replaced. */
function save(c: Ctx, what: string, current: string | null, value: string): string | null {
  if (current !== null && current !== '') {
    err(c, value, `${what} respecified`);
    return current;
  }
  return value;
}

function setString(c: Ctx, key: string, value: string): void {
  if (key === 'vdev') c.disk.vdev = save(c, 'vdev', c.disk.vdev, value);
  else if (key === 'script') c.disk.script = save(c, 'script', c.disk.script, value);
  else if (key === 'backend') c.disk.backendDomain = save(c, 'backend', c.disk.backendDomain, value);
  else c.strings.set(key, save(c, key, c.strings.get(key) ?? null, value) ?? '');
}

/** vdev_and_devtype(): `hdc:cdrom` in a positional slot. */
function vdevAndDevtype(c: Ctx, s: string): boolean {
  const colon = s.lastIndexOf(':');
  if (colon < 0) return false;
  c.disk.vdev = save(c, 'vdev', c.disk.vdev, s.slice(0, colon));
  const type = s.slice(colon + 1);
  if (type === 'cdrom') c.disk.isCdrom = true;
  else if (type === 'disk') c.disk.isCdrom = false;
  else err(c, type, 'unknown deprecated type');
  return true;
}

function positional(c: Ctx, s: string): boolean {
  if (c.errorCount > 0) return true;
  const d = c.disk;
  if (d.target === null) d.target = save(c, 'target', d.target, s);
  else if (!c.hadDeprPrefix && d.format === 'unknown') {
    if (d.target === '' && vdevAndDevtype(c, s)) d.format = 'empty';
    else setFormat(c, s);
  } else if (d.vdev === null) {
    if (!vdevAndDevtype(c, s)) d.vdev = save(c, 'vdev', d.vdev, s);
  } else if (!c.accessSet) {
    c.accessSet = true;
    setAccess(c, s);
  } else {
    err(c, s, 'too many positional parameters');
    return false; // "don't print any more errors"
  }
  return true;
}

/** Scans one string; returns false when the lexer would stop. */
function scan(c: Ctx, spec: string): void {
  let i = 0;
  const n = spec.length;
  // one parameter up to (and including) the next comma, as the `[^,]*,?` patterns match: `text`
  // without the comma, `token` with it (what xl quotes in its errors)
  const param = (from: number) => {
    const comma = spec.indexOf(',', from);
    return comma < 0
      ? { text: spec.slice(from), token: spec.slice(from), next: n }
      : { text: spec.slice(from, comma), token: spec.slice(from, comma + 1), next: comma + 1 };
  };
  while (i < n) {
    const ws = /^[ \t\n]+/.exec(spec.slice(i));
    if (ws) {
      i += ws[0].length;
      continue;
    }
    const rest = spec.slice(i);
    if (rest.startsWith('target=')) {
      // the target magic parameter eats the rest of the string (one trailing comma is stripped)
      const v = rest.slice(7).replace(/,$/, '');
      c.disk.target = save(c, 'target', c.disk.target, v);
      return;
    }
    const kv = /^([a-z][-a-z0-9_]*)=/.exec(rest);
    if (kv) {
      const key = kv[1];
      const { text, token, next } = param(i);
      const value = text.slice(key.length + 1);
      if (key === 'format') setFormat(c, value);
      else if (key === 'access') setAccess(c, value);
      else if (key === 'devtype') {
        if (value === 'cdrom') c.disk.isCdrom = true;
        else if (value === 'disk') c.disk.isCdrom = false;
        else err(c, token, 'unknown value for type');
      } else if (key === 'backendtype') {
        if (!BACKEND_TYPES.includes(value)) err(c, value, 'unknown value for backendtype');
        else if (c.disk.backendType !== null && c.disk.backendType !== value)
          err(c, value, 'backend respecified');
        else c.disk.backendType = value;
      } else if (key === 'specification') {
        if (value !== 'xen' && value !== 'virtio') err(c, value, 'unknown value for specification');
        else if (c.disk.specification !== null && c.disk.specification !== value)
          err(c, value, 'specification respecified');
        else c.disk.specification = value;
      } else if (key === 'colo-port') {
        if (!(Number.parseInt(value, 10) > 0)) err(c, value, 'unknown value for colo_port');
        else c.strings.set(key, value);
      } else if (key === 'grant_usage' && (value === '0' || value === '1')) {
        c.disk.grantUsage = value === '1';
      } else if (STRING_KEYS.includes(key)) setString(c, key, value);
      else err(c, token, 'unknown parameter');
      i = next;
      continue;
    }
    // deprecated prefixes: `raw:`, `iscsi:`, `phy:` … at the start of a parameter
    const prefix = /^([a-z][a-z0-9]*):/.exec(rest);
    if (prefix) {
      const p = prefix[1];
      const after = rest.slice(p.length + 1);
      if (['raw', 'qcow', 'qcow2', 'vhd'].includes(p) && p !== 'qcow') {
        c.hadDeprPrefix = true;
        setFormat(c, p);
        i += p.length + 1;
        continue;
      }
      if (['iscsi', 'nbd', 'enbd', 'drbd'].includes(p)) {
        c.hadDeprPrefix = true;
        c.disk.script = save(c, 'script', c.disk.script, `block-${p}`);
        i += p.length + 1;
        continue;
      }
      if (['tapdisk', 'tap', 'tap2', 'aio', 'ioemu', 'file', 'phy'].includes(p)) {
        c.hadDeprPrefix = true;
        i += p.length + 1;
        continue;
      }
      if (after === '' || /^[^a-z0-9]/.test(after)) {
        err(c, rest, 'unknown deprecated disk prefix');
        return;
      }
    }
    // flags: the whole parameter is the flag's name
    const { text, next } = param(i);
    if (FLAG_NAMES.includes(text)) {
      if (text === 'cdrom') c.disk.isCdrom = true;
      else if (text === 'direct-io-safe') c.disk.directIoSafe = true;
      else if (text === 'discard' || text === 'no-discard') c.disk.discard = text === 'discard';
      else if (text === 'colo' || text === 'no-colo') c.disk.colo = text === 'colo';
      else c.disk.trusted = text === 'trusted';
      i = next;
      continue;
    }
    if (!text.includes('=')) {
      if (!positional(c, text)) return;
      i = next;
      continue;
    }
    err(c, rest, 'bad disk syntax');
    return;
  }
}

/**
 * xlu_disk_parse(): every string adds to one disk; then the defaults (format raw, cdroms removable
 * and read-only) and the two mandatory checks. Throws DiskSpecError with xl's lines.
 */
export function parseDiskSpec(specs: readonly string[], source = 'command line'): XlDisk {
  const disk: XlDisk = {
    target: null,
    vdev: null,
    backendType: null,
    backendDomain: null,
    format: 'unknown',
    script: null,
    readwrite: true,
    isCdrom: false,
    removable: false,
    directIoSafe: false,
    discard: null,
    trusted: null,
    specification: null,
    colo: null,
    grantUsage: null,
  };
  const c: Ctx = {
    disk,
    spec: '',
    source,
    errors: [],
    errorCount: 0,
    hadDeprPrefix: false,
    accessSet: false,
    strings: new Map(),
  };
  for (const s of specs) {
    if (typeof s !== 'string') throw new DiskSpecError([`${source}: a disk specification must be a string`]);
    c.spec = s;
    scan(c, s);
    failIfErrors(c);
  }
  if (disk.format === 'unknown') disk.format = 'raw';
  if (disk.isCdrom) {
    disk.removable = true;
    disk.readwrite = false;
    if (disk.target === null || disk.target === '') disk.format = 'empty';
  }
  if (disk.vdev === null) err(c, null, 'no vdev specified');
  else if (disk.target === null && !disk.removable)
    err(c, null, 'no target specified (and device not removable)');
  failIfErrors(c);
  return disk;
}

/**
 * What `xl -N block-attach` prints (libxl_device_disk_to_json): the fields that differ from their
 * defaults, in the IDL's order, with yajl's four-space indentation.
 */
export function diskToJson(d: XlDisk): string {
  const fields: Array<[string, string]> = [];
  const str = (v: string) => JSON.stringify(v);
  if (d.backendDomain !== null) fields.push(['backend_domname', str(d.backendDomain)]);
  if (d.target !== null) fields.push(['pdev_path', str(d.target)]);
  if (d.vdev !== null) fields.push(['vdev', str(d.vdev)]);
  if (d.backendType !== null) fields.push(['backend', str(d.backendType)]);
  if (d.format !== 'unknown') fields.push(['format', str(d.format)]);
  if (d.script !== null) fields.push(['script', str(d.script)]);
  if (d.removable) fields.push(['removable', '1']);
  if (d.readwrite) fields.push(['readwrite', '1']);
  if (d.isCdrom) fields.push(['is_cdrom', '1']);
  if (d.directIoSafe) fields.push(['direct_io_safe', 'true']);
  if (d.discard !== null) fields.push(['discard_enable', d.discard ? '"True"' : '"False"']);
  if (d.specification !== null) fields.push(['specification', str(d.specification)]);
  if (d.colo !== null) fields.push(['colo_enable', d.colo ? '"True"' : '"False"']);
  if (d.trusted !== null) fields.push(['trusted', d.trusted ? '"True"' : '"False"']);
  if (d.grantUsage !== null) fields.push(['grant_usage', d.grantUsage ? '"True"' : '"False"']);
  return `{\n${fields.map(([k, v]) => `    "${k}": ${v}`).join(',\n')}\n}\n`;
}

/**
 * libxl__device_disk_dev_number(): xvdX[N], dNpM, a number, hdX[N], sdX[N] → the virtual-device
 * number (xen-vbd-interface(7)), with the disk and partition it names; null when it names none.
 */
export function vdevNumber(vdev: string): { devid: number; disk: number; partition: number } | null {
  const virtdisk = (prefix: string, maxDisk: number, maxPart: number) => {
    if (!vdev.startsWith(prefix)) return null;
    const m = /^([a-z]+)(0|[1-9][0-9]*)?$/.exec(vdev.slice(prefix.length));
    if (!m) return null;
    const disk = diskIndex(m[1]);
    const partition = m[2] === undefined ? 0 : Number(m[2]);
    if (disk === null || disk > maxDisk || partition > maxPart) return null;
    return { disk, partition };
  };
  const d = /^d(0|[1-9][0-9]*)p(0|[1-9][0-9]*)$/.exec(vdev);
  const x = d ? { disk: Number(d[1]), partition: Number(d[2]) } : virtdisk('xvd', (1 << 20) - 1, 255);
  if (x && x.disk < 1 << 20 && x.partition < 256) return { devid: xvdDevid(x.disk, x.partition), ...x };
  if (/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+|0[0-7]+)$/.test(vdev)) {
    const v = Number(
      vdev.startsWith('0') && !vdev.startsWith('0x') && vdev.length > 1 ? `0o${vdev.slice(1)}` : vdev,
    );
    if (v <= 0x7fffffff) return { devid: v, disk: -1, partition: -1 };
  }
  const h = virtdisk('hd', 3, 63);
  if (h) return { devid: ((h.disk < 2 ? 3 : 22) << 8) | ((h.disk & 1) << 6) | h.partition, ...h };
  const s = virtdisk('sd', 15, 15);
  if (s) return { devid: (8 << 8) | (s.disk << 4) | s.partition, ...s };
  return null;
}

/** The target forms pvblk serves: an existing host disk, or a new scsi_debug disk with its parameters. */
export type PvblkTarget = { kind: 'disk'; path: string } | { kind: 'scsi_debug'; params: string };

/** The scsi_debug target extension: `target=scsi_debug:<modprobe-style parameters>`. */
export const SCSI_DEBUG_TARGET = 'scsi_debug:';

export interface PvblkDisk {
  vdev: string;
  devid: number;
  target: PvblkTarget;
  mode: 'w' | 'r';
  discard: boolean;
  trusted: boolean;
  cdrom: boolean;
}

/**
 * What pvblk can attach of a parsed disk: blkback (`phy`) in Dom0, raw format, a whole xvd disk, a
 * host disk (`/dev/sdh`, `sdh`) or `scsi_debug:<params>`. Refusals name the parameter.
 */
export function checkPvblkDisk(d: XlDisk): PvblkDisk {
  const no = (msg: string) => new PvblkError('EINVAL', msg);
  if (d.backendDomain !== null && d.backendDomain !== '0' && d.backendDomain !== 'Domain-0')
    throw no(`backend=${d.backendDomain}: pvblk has no driver domains; the backend is Domain-0`);
  if (d.backendType !== null && d.backendType !== 'phy')
    throw no(
      `backendtype=${d.backendType}: pvblk's backend is blkback (phy); a QEMU-like grant-copy data path is \`pvblk host --data-path copy\``,
    );
  if (d.specification === 'virtio') throw no('specification=virtio: pvblk speaks the Xen PV protocol only');
  if (d.format !== 'raw') throw no(`format=${d.format}: pvblk's disks are raw`);
  if (d.script !== null) throw no(`script=${d.script}: pvblk runs no hotplug scripts`);
  if (d.colo) throw no('colo: pvblk has no COLO replication');
  const vdev = d.vdev ?? '';
  const n = vdevNumber(vdev);
  if (!n) throw no(`Invalid or unsupported virtual disk identifier ${vdev}`);
  if (!vdev.startsWith('xvd') || n.partition !== 0)
    throw no(`vdev ${vdev}: pvblk guests name whole xvd disks only (xvda, xvdb, …)`);
  const raw = d.target ?? '';
  let target: PvblkTarget;
  if (raw.startsWith(SCSI_DEBUG_TARGET))
    target = { kind: 'scsi_debug', params: raw.slice(SCSI_DEBUG_TARGET.length).trim() };
  else {
    // libxl: a target that does not start with '/' is under /dev
    const path = raw.startsWith('/') ? raw : `/dev/${raw}`;
    if (!/^\/dev\/sd[a-z]{1,3}$/.test(path))
      throw no(
        `target ${raw === '' ? '(empty)' : raw}: pvblk attaches a host disk (/dev/sdX) or a new one (target=${SCSI_DEBUG_TARGET}<parameters>)`,
      );
    target = { kind: 'disk', path };
  }
  return {
    vdev,
    devid: n.devid,
    target,
    mode: d.readwrite ? 'w' : 'r',
    discard: d.discard ?? true,
    trusted: d.trusted ?? true,
    cdrom: d.isCdrom,
  };
}
