import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  KERN_ERR,
  KERN_WARNING,
  KERN_INFO,
  KERN_NOTICE,
  MemoryKernelLog,
  crc16T10Dif,
  generatePi,
  type PiFormat,
} from '@pvblk/shared';
import {
  dataOffset,
  integrityProfileFor,
  openScsiDebugDisk,
  parseScsiDebugParams,
  piOffset,
  type SdDisk,
  type StoreFormat,
} from '../../src/scsi/index.ts';
import { SD_TIMEOUT_MAX_S } from '../../src/scsi/sd.ts';

const SEED_LINES = [
  'Sense Key : Medium Error [current]',
  'Info fld=0x1234',
  'sd 9:0:0:0 [sdg]',
  'Add. Sense: Unrecovered read error',
  'sd 9:0:0:0 [sdg] CDB:',
  'Read(10): 28 20 00 00 12 30 00 00 08 00',
  'end_request: critical target error, dev sdg, sector 4656',
];

interface Opened {
  d: SdDisk;
  log: MemoryKernelLog;
  /** Lines printed since the last call, at KERN_ERR or more severe (what a quiet console shows). */
  errs(): string[];
  /** Every line printed since the last call. */
  all(): string[];
}

/** Disks opened by a test, closed after it so file handles do not leak. */
const opened: SdDisk[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

async function disk(
  params: string,
  opts: { dataDir?: string; logResult?: boolean; timeoutMs?: number; ehLogging?: number } = {},
): Promise<Opened> {
  const log = new MemoryKernelLog();
  const d = await openScsiDebugDisk({ params: `delay=0 ${params}`, log, ...opts });
  opened.push(d);
  let mark = log.messages.length;
  const since = (max: number) => {
    const out = log.messages
      .slice(mark)
      .filter((m) => m.level <= max)
      .map((m) => m.text);
    mark = log.messages.length;
    return out;
  };
  return { d, log, errs: () => since(KERN_ERR), all: () => since(7) };
}

function pi(data: Buffer, seed: number, format: PiFormat, appTag = 0): Buffer {
  const out = Buffer.alloc((data.length / 512) * 8);
  generatePi(data, out, { format, seed, appTag });
  return out;
}

const h4 = (v: number) => v.toString(16).padStart(4, '0');
const ALL_CHECKS = { guard: true, app: true, ref: true };

describe('sd: the seed medium error', () => {
  it('prints the seven lines of the talk for a READ of sectors 4656..4663 with dif=1 opts=34', async () => {
    const { d, errs, all } = await disk('dif=1 opts=34');
    all();
    const r = await d.read(4656, 8);
    expect(r).toEqual({
      ok: false,
      error: {
        kind: 'medium',
        sector: 4656,
        badSector: 4660,
        detail: 'Medium Error: Unrecovered read error (Info fld=0x1234)',
      },
    });
    expect(errs()).toEqual(SEED_LINES);
    expect(all()).toEqual([]);
  });

  it('adds the midlayer’s KERN_INFO lines before them with logResult', async () => {
    const { d, all, log } = await disk('dif=1 opts=34', { logResult: true });
    all();
    await d.read(4656, 8);
    expect(all()).toEqual([
      'sd 9:0:0:0 [sdg] Unhandled sense code',
      'sd 9:0:0:0 [sdg]',
      'Result: hostbyte=DID_OK driverbyte=DRIVER_SENSE',
      'sd 9:0:0:0 [sdg]',
      ...SEED_LINES,
    ]);
    expect(log.lines(KERN_ERR).slice(-7)).toEqual(SEED_LINES);
  });

  it('reports Info fld=0x1238 for the next 4 KiB block', async () => {
    const { d, errs } = await disk('dif=1 opts=34');
    errs();
    const r = await d.read(4664, 8);
    expect(r.ok ? null : r.error).toMatchObject({ kind: 'medium', sector: 4664, badSector: 0x1238 });
    expect(errs()).toEqual([
      'Sense Key : Medium Error [current]',
      'Info fld=0x1238',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Unrecovered read error',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 20 00 00 12 38 00 00 08 00',
      'end_request: critical target error, dev sdg, sector 4664',
    ]);
  });

  it('with medium_error_start=100 fails the read of 96..103 and still says Info fld=0x1234', async () => {
    // scsi_debug computes the Information field from the constant OPT_MEDIUM_ERR_ADDR, not from
    // medium_error_start; 0x1234 lies outside the request, so sd_completed_bytes() gives 0.
    const { d, errs } = await disk('opts=2 medium_error_start=100');
    errs();
    const r = await d.read(96, 8);
    expect(r.ok ? null : r.error).toMatchObject({ kind: 'medium', sector: 96, badSector: 0x1234 });
    expect(errs()).toEqual([
      'Sense Key : Medium Error [current]',
      'Info fld=0x1234',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Unrecovered read error',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 00 00 00 00 60 00 00 08 00',
      'end_request: critical target error, dev sdg, sector 96',
    ]);
  });

  it('sends RDPROTECT=000 on a disk without PI (dif=0)', async () => {
    const { d, errs } = await disk('opts=34');
    errs();
    await d.read(4656, 8);
    expect(errs()).toContain('Read(10): 28 00 00 00 12 30 00 00 08 00');
  });

  it('prints descriptor-format sense without an Info field (dsense=1)', async () => {
    const { d, errs } = await disk('dif=1 opts=2 dsense=1');
    errs();
    const r = await d.read(4656, 8);
    expect(r.ok ? null : r.error).toEqual({
      kind: 'medium',
      sector: 4656,
      detail: 'Medium Error: Unrecovered read error',
    });
    expect(errs()).toEqual([
      'Sense Key : Medium Error [current] [descriptor]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Unrecovered read error',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 20 00 00 12 30 00 00 08 00',
      'end_request: critical target error, dev sdg, sector 4656',
    ]);
  });

  it('counts LBAs in 4 KiB blocks on a 4096-byte disk', async () => {
    const { d, errs } = await disk('sector_size=4096 dev_size_mb=32 opts=2');
    errs();
    const r = await d.read(0x1234 * 8, 8);
    expect(r.ok ? null : r.error).toMatchObject({ kind: 'medium', sector: 37280, badSector: 37280 });
    expect(errs().slice(-2)).toEqual([
      'Read(10): 28 00 00 00 12 34 00 00 01 00',
      'end_request: critical target error, dev sdg, sector 37280',
    ]);
  });

  it('applies a runtime opts change to the next command', async () => {
    const { d } = await disk('dif=1');
    expect((await d.read(4656, 8)).ok).toBe(true);
    d.target.applyRuntimeParam('opts', '0x22');
    expect((await d.read(4656, 8)).ok).toBe(false);
    d.target.applyRuntimeParam('medium_error_start', 8000);
    expect((await d.read(4656, 8)).ok).toBe(true);
  });
});

describe('sd: device, profile and probe', () => {
  it('describes the default disk', async () => {
    const { d, log } = await disk('');
    expect(d).toMatchObject({
      name: 'sdg',
      hctl: '9:0:0:0',
      sectors: 16384,
      logicalBlockSize: 512,
      physicalBlockSize: 512,
      readOnly: false,
      integrity: null,
      writeCache: true,
      discard: null,
    });
    expect(log.lines()).toEqual(['scsi_debug: host protection']);
  });

  it('registers profiles as sd_dif_config_host() does', () => {
    const prof = (s: string) => integrityProfileFor(parseScsiDebugParams(s));
    expect(prof('dif=1')).toBeNull();
    expect(prof('dix=1')).toEqual({
      type: 1,
      guard: 'crc',
      interval: 512,
      tupleSize: 8,
      tagSize: 0,
      name: 'T10-DIF-TYPE1-CRC',
      deviceCapable: false,
    });
    expect(prof('dif=1 dix=1 guard=1')).toMatchObject({
      type: 1,
      name: 'T10-DIF-TYPE1-IP',
      tagSize: 2,
      deviceCapable: true,
    });
    expect(prof('dif=2 dix=1')).toMatchObject({ type: 2, name: 'T10-DIF-TYPE1-CRC', tagSize: 2 });
    expect(prof('dif=3 dix=1')).toMatchObject({ type: 3, name: 'T10-DIF-TYPE3-CRC', tagSize: 6 });
    expect(prof('dif=3 dix=1 ato=0')).toMatchObject({ tagSize: 0 });
    expect(prof('dif=1 dix=1 sector_size=4096')).toMatchObject({ interval: 512 });
  });

  it('logs the probe like 3.x sd', async () => {
    const { log } = await disk('dif=1 dix=1 host_name=sdh hctl=2:0:1:0');
    expect(log.messages.map((m) => [m.level, m.text])).toEqual([
      [KERN_INFO, 'scsi_debug: host protection DIF1 DIX1'],
      [KERN_NOTICE, 'sd 2:0:1:0 [sdh] Enabling DIF Type 1 protection'],
      [KERN_NOTICE, 'sd 2:0:1:0 [sdh] Enabling DIX T10-DIF-TYPE1-CRC protection'],
      [KERN_NOTICE, 'sd 2:0:1:0 [sdh] DIF application tag size 2'],
    ]);
  });

  it('fails requests beyond the disk quietly and misaligned ones with a line', async () => {
    const { d, errs } = await disk('sector_size=4096');
    errs();
    expect(await d.read(16384 - 8, 16)).toEqual({
      ok: false,
      error: { kind: 'range', sector: 16376, detail: 'beyond 16384 sectors' },
    });
    expect(errs()).toEqual([]);
    expect((await d.read(1, 8)).ok).toBe(false);
    expect(errs()).toEqual(['sd 9:0:0:0 [sdg] Bad block number requested']);
  });
});

describe('sd: PI round trips through a real file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pvblk-sd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const combos: [number, number, number][] = [];
  for (const dif of [1, 2, 3])
    for (const dix of [0, 1]) for (const guard of [0, 1]) combos.push([dif, dix, guard]);

  it.each(combos)('dif=%i dix=%i guard=%i', async (dif, dix, guard) => {
    const { d, errs } = await disk(`dif=${dif} dix=${dix} guard=${guard}`, { dataDir: dir });
    const format: PiFormat = { type: dif as 1 | 2 | 3, guard: guard ? 'ip' : 'crc', interval: 512 };
    const store: StoreFormat = { blockSize: 512, blocks: 16384, pi: true };
    const data = randomBytes(16 * 512);
    expect(await d.write(64, data)).toEqual({ ok: true });
    const expected = pi(data, 64, format);

    const r = await d.read(64, 16);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    expect(r.data).toEqual(data);
    if (dix) expect(r.pi).toEqual(expected);
    else expect(r.pi).toBeUndefined();

    // The medium holds what the block layer (DIX) or the HBA (WRITE_INSERT) generated.
    const raw = await readFile(join(dir, 'sdg.img'));
    for (let i = 0; i < 16; i++) {
      expect(raw.subarray(dataOffset(store, 64 + i), dataOffset(store, 64 + i) + 512)).toEqual(
        data.subarray(i * 512, (i + 1) * 512),
      );
      expect(raw.subarray(piOffset(store, 64 + i), piOffset(store, 64 + i) + 8)).toEqual(
        expected.subarray(i * 8, i * 8 + 8),
      );
    }

    if (dix) {
      // PI from above (the guest via DIX) goes through untouched, application tag included.
      const data2 = randomBytes(8 * 512);
      const mine = pi(data2, 80, format, 0xbeef);
      expect(await d.write(80, data2, { tuples: mine, checks: ALL_CHECKS })).toEqual({ ok: true });
      const r2 = await d.read(80, 8, { checks: ALL_CHECKS });
      expect(r2).toEqual({ ok: true, data: data2, pi: mine });
    }
    expect(errs()).toEqual([]);
    await d.close();
  });

  it('keeps 8 tuples per 4 KiB block (sector_size=4096)', async () => {
    const { d } = await disk('dif=1 dix=1 sector_size=4096', { dataDir: dir });
    const store: StoreFormat = { blockSize: 4096, blocks: 2048, pi: true };
    const data = randomBytes(8192);
    expect(await d.write(64, data)).toEqual({ ok: true });
    const expected = pi(data, 64, { type: 1, guard: 'crc', interval: 512 });
    const r = await d.read(64, 16);
    expect(r).toEqual({ ok: true, data, pi: expected });
    const raw = await readFile(join(dir, 'sdg.img'));
    expect(raw.length).toBe(2048 * 4160);
    expect(raw.subarray(piOffset(store, 8), piOffset(store, 8) + 64)).toEqual(expected.subarray(0, 64));
    await d.close();
  });
});

describe('sd: corrupted medium', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pvblk-sd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const F: StoreFormat = { blockSize: 512, blocks: 16384, pi: true };

  async function flip(offset: number, mask: number): Promise<void> {
    const fh = await open(join(dir, 'sdg.img'), 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] ^= mask;
    await fh.write(b, 0, 1, offset);
    await fh.close();
  }

  it('a flipped data bit fails the next read with a guard check at that sector (target-detected)', async () => {
    const { d, errs } = await disk('dif=1', { dataDir: dir });
    const data = randomBytes(4096);
    await d.write(128, data);
    await flip(dataOffset(F, 130) + 5, 0x10);
    const corrupted = Buffer.from(data.subarray(1024, 1536));
    corrupted[5] ^= 0x10;
    errs();
    const r = await d.read(128, 8);
    expect(r).toEqual({
      ok: false,
      error: {
        kind: 'protection',
        check: 'guard',
        detectedBy: 'device',
        sector: 128,
        badSector: 130,
        detail: 'Aborted Command: Logical block guard check failed',
      },
    });
    expect(errs()).toEqual([
      `prot_verify_read: GUARD check failed on sector 130 rcvd 0x${h4(crc16T10Dif(data.subarray(1024, 1536)))}, data 0x${h4(crc16T10Dif(corrupted))}`,
      'Sense Key : Aborted Command [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Logical block guard check failed',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 20 00 00 00 80 00 00 08 00',
      'end_request: I/O error, dev sdg, sector 128',
    ]);
    expect(d.target.stats().difErrors).toBe(1);
  });

  it('a flipped reference-tag byte fails with a ref check; a flipped guard byte with a guard check', async () => {
    const { d, errs, all } = await disk('dif=1 dix=1', { dataDir: dir, logResult: true });
    await d.write(128, randomBytes(4096));
    await flip(piOffset(F, 131) + 7, 0x01);
    all();
    const r = await d.read(128, 8);
    expect(r.ok ? null : r.error).toMatchObject({
      kind: 'protection',
      check: 'ref',
      detectedBy: 'device',
      sector: 128,
      badSector: 131,
    });
    expect(all()).toEqual([
      'prot_verify_read: REF check failed on sector 131',
      'sd 9:0:0:0 [sdg] Target Data Integrity Failure',
      'sd 9:0:0:0 [sdg]',
      'Result: hostbyte=DID_OK driverbyte=DRIVER_SENSE',
      'sd 9:0:0:0 [sdg]',
      'Sense Key : Aborted Command [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Logical block reference tag check failed',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 20 00 00 00 80 00 00 08 00',
      'end_request: I/O error, dev sdg, sector 128',
    ]);
    await flip(piOffset(F, 131) + 7, 0x01);
    await flip(piOffset(F, 129) + 0, 0x80);
    const r2 = await d.read(128, 8);
    expect(r2.ok ? null : r2.error).toMatchObject({ check: 'guard', badSector: 129 });
    errs();
  });

  it('reads never-written sectors through the escape tuples, for every type', async () => {
    for (const dif of [1, 2, 3]) {
      const { d, errs } = await disk(`dif=${dif} dix=1`);
      const r = await d.read(1000, 8);
      expect(r).toEqual({ ok: true, data: Buffer.alloc(4096), pi: Buffer.alloc(64, 0xff) });
      expect(errs()).toEqual([]);
    }
  });
});

describe('sd: the HBA and the block layer', () => {
  it('rejects bad PI from above in the HBA (ILLEGAL REQUEST, DID_ABORT) before the disk sees it', async () => {
    const { d, all } = await disk('dif=1 dix=1', { logResult: true });
    const data = randomBytes(1024);
    const tuples = pi(data, 40, { type: 1, guard: 'crc', interval: 512 });
    tuples[0] ^= 1;
    const before = d.target.stats().commands;
    all();
    const r = await d.write(40, data, { tuples, checks: ALL_CHECKS });
    expect(r).toEqual({
      ok: false,
      error: {
        kind: 'protection',
        check: 'guard',
        detectedBy: 'host',
        sector: 40,
        badSector: 40,
        detail: 'Illegal Request: Logical block guard check failed',
      },
    });
    expect(d.target.stats().commands).toBe(before);
    expect(all()).toEqual([
      'sd 9:0:0:0 [sdg] Host Data Integrity Failure',
      'sd 9:0:0:0 [sdg]',
      'Result: hostbyte=DID_ABORT driverbyte=DRIVER_SENSE',
      'sd 9:0:0:0 [sdg]',
      'Sense Key : Illegal Request [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Logical block guard check failed',
      'sd 9:0:0:0 [sdg] CDB:',
      'Write(10): 2a 20 00 00 00 28 00 00 02 00',
      'end_request: I/O error, dev sdg, sector 40',
    ]);
  });

  it('with no checks requested writes WRPROTECT=011 unchecked; the next checked read finds it', async () => {
    const { d, log } = await disk('dif=1 dix=1 opts=1');
    const data = randomBytes(512);
    const tuples = pi(data, 50, { type: 1, guard: 'crc', interval: 512 });
    tuples[1] ^= 1;
    const none = { guard: false, app: false, ref: false };
    expect(await d.write(50, data, { tuples, checks: none })).toEqual({ ok: true });
    expect(log.lines()).toContain('scsi_debug: cmd 2a 60 00 00 00 32 00 00 01 00');
    expect(await d.read(50, 1, { checks: none })).toEqual({ ok: true, data, pi: tuples });
    const r = await d.read(50, 1);
    expect(r.ok ? null : r.error).toMatchObject({ kind: 'protection', check: 'guard', detectedBy: 'device' });
  });

  it('verifies in the block layer what no one else checks (DIX on an unformatted disk)', async () => {
    const { d, errs } = await disk('dix=1');
    const data = randomBytes(1024);
    const tuples = pi(data, 999, { type: 1, guard: 'crc', interval: 512 });
    // The HBA checks only the guard here; the wrong ref tags reach the store.
    expect(await d.write(200, data, { tuples, checks: { guard: true, app: false, ref: false } })).toEqual({
      ok: true,
    });
    errs();
    expect(await d.read(200, 2)).toEqual({
      ok: false,
      error: {
        kind: 'protection',
        check: 'ref',
        detectedBy: 'host',
        sector: 200,
        badSector: 200,
        detail: 'ref tag error',
      },
    });
    expect(errs()).toEqual(['sdg: ref tag error on sector 200 (rcvd 999)']);

    const bad = pi(data, 300, { type: 1, guard: 'crc', interval: 512 });
    bad[8] ^= 0xff;
    await d.write(300, data, { tuples: bad, checks: { guard: false, app: false, ref: true } });
    const r = await d.read(300, 2);
    expect(r.ok ? null : r.error).toMatchObject({ check: 'guard', sector: 301 });
    const g = crc16T10Dif(data.subarray(512));
    expect(errs()).toEqual([`sdg: guard tag error on sector 301 (rcvd ${h4(g ^ 0xff00)}, data ${h4(g)})`]);
  });

  it('lets a short transfer through unchecked without PI, and catches it by ref tag with PI', async () => {
    const plain = await disk('opts=0x100 every_nth=2');
    const data = randomBytes(4096);
    await plain.d.write(0, data);
    const r = await plain.d.read(0, 8);
    // sd_done() ignores the residue of a GOOD read: the missing half is whatever the pages held.
    expect(r).toEqual({ ok: true, data: Buffer.concat([data.subarray(0, 2048), Buffer.alloc(2048)]) });

    const prot = await disk('dif=1 opts=0x100 every_nth=2');
    await prot.d.write(0, data);
    const r2 = await prot.d.read(0, 8);
    expect(r2.ok ? null : r2.error).toMatchObject({
      kind: 'protection',
      check: 'ref',
      detectedBy: 'host',
      badSector: 4,
    });
  });
});

describe('sd: injected faults', () => {
  it('DIF_ERR with every_nth=3 fails the third command as a target-detected guard error', async () => {
    const { d, errs } = await disk('dif=1 opts=0x20 every_nth=3');
    expect(await d.write(0, randomBytes(4096))).toEqual({ ok: true });
    expect((await d.read(0, 8)).ok).toBe(true);
    errs();
    const r = await d.read(8, 8);
    expect(r).toEqual({
      ok: false,
      error: {
        kind: 'protection',
        check: 'guard',
        detectedBy: 'device',
        sector: 8,
        detail: 'Aborted Command: Logical block guard check failed',
      },
    });
    expect(errs()).toEqual([
      'Sense Key : Aborted Command [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Logical block guard check failed',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 20 00 00 00 08 00 00 08 00',
      'end_request: I/O error, dev sdg, sector 8',
    ]);
    expect((await d.read(8, 8)).ok).toBe(true);
  });

  it('DIX_ERR reports a host-detected guard error', async () => {
    const { d } = await disk('dif=1 dix=1 opts=0x40 every_nth=1');
    const r = await d.write(16, randomBytes(512));
    expect(r.ok ? null : r.error).toMatchObject({
      kind: 'protection',
      check: 'guard',
      detectedBy: 'host',
      sector: 16,
    });
  });

  it('prints the 32-byte CDB of a Type 2 disk', async () => {
    const { d, errs } = await disk('dif=2 opts=0x20 every_nth=1');
    errs();
    await d.write(16, randomBytes(4096));
    expect(errs()).toContain(
      'Write(32): 7f 00 00 00 00 00 00 18 00 0b 20 00 00 00 00 00 00 00 00 10 00 00 00 10 00 00 00 00 00 00 00 08',
    );
  });

  it('prints a recovered error and succeeds', async () => {
    const { d, errs } = await disk('opts=8 every_nth=2');
    const data = randomBytes(4096);
    await d.write(0, data);
    errs();
    expect(await d.read(0, 8)).toEqual({ ok: true, data });
    expect(errs()).toEqual([
      'Sense Key : Recovered Error [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Failure prediction threshold exceeded',
    ]);
  });

  it('retries a transport error silently, and fails after SD_MAX_RETRIES', async () => {
    const once = await disk('opts=0x10 every_nth=2');
    await once.d.read(0, 8);
    once.errs();
    expect((await once.d.read(0, 8)).ok).toBe(true);
    expect(once.errs()).toEqual([]);
    expect(once.d.target.stats().commands).toBe(3);

    const always = await disk('opts=0x10 every_nth=1');
    always.errs();
    const r = await always.d.read(0, 8);
    expect(r).toEqual({
      ok: false,
      error: { kind: 'transport', sector: 0, detail: 'Aborted Command: Ack/nak timeout' },
    });
    expect(always.d.target.stats().commands).toBe(6);
    expect(always.errs()).toEqual([
      'Sense Key : Aborted Command [current]',
      'sd 9:0:0:0 [sdg]',
      'Add. Sense: Ack/nak timeout',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 00 00 00 00 00 00 00 08 00',
      'end_request: I/O error, dev sdg, sector 0',
    ]);
  });

  it('aborts and retries a timed-out command, printing the abort and the retry as scsi_error.c does', async () => {
    const once = await disk('opts=4 every_nth=2', { timeoutMs: 1 });
    await once.d.read(0, 8);
    once.all();
    expect((await once.d.read(0, 8)).ok).toBe(true);
    expect(once.d.target.stats()).toMatchObject({ aborts: 1, timeouts: 1, commands: 3 });
    // the second command (scmd #1) timed out, was aborted and retried once
    expect(once.all()).toEqual([
      'sd 9:0:0:0 [sdg] scmd ffff880037a3c1c0 abort scheduled',
      'sd 9:0:0:0 [sdg] scmd ffff880037a3c1c0 aborting command ffff880037a3c1c0',
      'sd 9:0:0:0 [sdg] scmd ffff880037a3c1c0 retry aborted command',
    ]);
    expect(once.log.messages.slice(-3).map((m) => m.level)).toEqual([KERN_INFO, KERN_INFO, KERN_WARNING]);

    const quiet = await disk('opts=4 every_nth=2', { timeoutMs: 1, ehLogging: 0 });
    await quiet.d.read(0, 8);
    quiet.all();
    expect((await quiet.d.read(0, 8)).ok).toBe(true);
    expect(quiet.all()).toEqual([]); // scsi_logging_level 0: Linux's silence
  });

  it('finishes a command that keeps timing out with DID_TIME_OUT after SD_MAX_RETRIES retries', async () => {
    const always = await disk('opts=4 every_nth=1', { timeoutMs: 1, logResult: true });
    always.all();
    const r = await always.d.read(0, 8);
    expect(r).toEqual({
      ok: false,
      error: { kind: 'timeout', sector: 0, detail: 'command timed out, retries exhausted' },
    });
    expect(always.d.target.stats()).toMatchObject({ aborts: 6, commands: 6 });
    const lines = always.all();
    const scmd = 'sd 9:0:0:0 [sdg] scmd ffff880037a3c000';
    expect(lines.filter((l) => l === `${scmd} retry aborted command`)).toHaveLength(5);
    expect(lines.slice(-9)).toEqual([
      `${scmd} abort scheduled`,
      `${scmd} aborting command ffff880037a3c000`,
      `${scmd} finish aborted command`,
      'sd 9:0:0:0 [sdg] Unhandled error code',
      'sd 9:0:0:0 [sdg]',
      'Result: hostbyte=DID_TIME_OUT driverbyte=DRIVER_OK',
      'sd 9:0:0:0 [sdg] CDB:',
      'Read(10): 28 00 00 00 00 00 00 00 08 00',
      'end_request: I/O error, dev sdg, sector 0',
    ]);
  });

  it('device/timeout: shown in seconds (30 by default), settable, used by the next command', async () => {
    const { d, log } = await disk('opts=4 every_nth=2');
    expect(d.timeoutSeconds).toBe(30);
    expect(d.setTimeoutSeconds('abc')).toBe(false);
    expect(d.setTimeoutSeconds('-1')).toBe(false);
    // past what a Node timer can wait (2^31 - 1 ms), where one asked to waits 1 ms instead
    expect(d.setTimeoutSeconds(String(SD_TIMEOUT_MAX_S + 1))).toBe(false);
    expect(d.timeoutSeconds).toBe(30);
    expect(d.setTimeoutSeconds(String(SD_TIMEOUT_MAX_S))).toBe(true);
    expect(d.timeoutSeconds).toBe(2147483);
    expect(d.setTimeoutSeconds('0\n')).toBe(true);
    expect(d.timeoutSeconds).toBe(0);
    await d.read(0, 8);
    // with 0 s the timed-out command is aborted at once instead of 30 s later
    expect((await d.read(0, 8)).ok).toBe(true);
    expect(log.messages.some((m) => m.text.endsWith('abort scheduled'))).toBe(true);
  });

  it('requeues HOST_BUSY and TASK SET FULL', async () => {
    for (const opts of ['0x8000', '0x800']) {
      const { d } = await disk(`opts=${opts} every_nth=2`);
      await d.read(0, 8);
      expect((await d.read(0, 8)).ok).toBe(true);
      expect(d.target.stats().commands).toBe(3);
    }
  });
});

describe('sd: flush and discard', () => {
  it('flushes with SYNCHRONIZE CACHE, or not at all without a write cache', async () => {
    const wce = await disk('opts=1');
    wce.all();
    expect(await wce.d.flush()).toEqual({ ok: true });
    expect(wce.all()).toEqual(['scsi_debug: cmd 35 00 00 00 00 00 00 00 00 00']);
    const nwce = await disk('opts=0x1000');
    expect(nwce.d.writeCache).toBe(false);
    expect(await nwce.d.flush()).toEqual({ ok: true });
    expect(nwce.d.target.stats().commands).toBe(0);
  });

  it('fails a timed-out flush without printing (a BLOCK_PC request)', async () => {
    const { d, errs } = await disk('opts=4 every_nth=1', { timeoutMs: 1 });
    errs();
    const r = await d.flush();
    expect(r.ok ? null : r.error.kind).toBe('timeout');
    expect(errs()).toEqual([]);
  });

  it('has no discard unless the disk supports logical block provisioning', async () => {
    const { d } = await disk('');
    expect(await d.discardRange(0, 8, false)).toEqual({
      ok: false,
      error: { kind: 'notsupp', sector: 0, detail: 'discard' },
    });
  });

  it('discards with WRITE SAME(16) + UNMAP when lbprz=1, leaving zeroes and escape PI', async () => {
    const { d, all } = await disk('dif=1 dix=1 lbpws=1 opts=1');
    expect(d.discard).toEqual({ granularity: 512, alignment: 0, secure: false });
    await d.write(8, randomBytes(4096));
    all();
    expect(await d.discardRange(8, 8, false)).toEqual({ ok: true });
    expect(all()).toEqual(['scsi_debug: cmd 93 08 00 00 00 00 00 00 00 08 00 00 00 08 00 00']);
    expect(await d.read(8, 8)).toEqual({ ok: true, data: Buffer.alloc(4096), pi: Buffer.alloc(64, 0xff) });
    expect((await d.discardRange(8, 8, true)).ok).toBe(false);
  });

  it('discards with UNMAP when the disk does not promise zeroes (lbpu=1 lbprz=0)', async () => {
    const { d, all } = await disk('lbpu=1 lbprz=0 opts=1');
    all();
    expect(await d.discardRange(16, 8, false)).toEqual({ ok: true });
    expect(all()).toEqual(['scsi_debug: cmd 42 00 00 00 00 00 00 00 18 00']);
  });
});

describe('sd: persistence and concurrency', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pvblk-sd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the same data and PI after a restart, and a fresh disk after a format change', async () => {
    const first = await disk('dif=1 dix=1', { dataDir: dir });
    const data = randomBytes(4096);
    await first.d.write(10, data);
    const before = await first.d.read(10, 8);
    await first.d.close();
    await expect(first.d.read(10, 8)).rejects.toThrow(/closed/);

    const again = await disk('dif=1 dix=1', { dataDir: dir });
    expect(await again.d.read(10, 8)).toEqual(before);
    expect(again.log.lines().some((l) => l.includes('formatting'))).toBe(false);
    await again.d.close();

    const other = await disk('dif=0', { dataDir: dir });
    expect(
      other.log.lines().some((l) => l.startsWith(`scsi_debug: re-formatting ${join(dir, 'sdg.img')}`)),
    ).toBe(true);
    expect(await other.d.read(10, 8)).toEqual({ ok: true, data: Buffer.alloc(4096) });
    await other.d.close();
  });

  it('serves concurrent requests to different ranges', async () => {
    const { d } = await disk('dif=1 dix=1 delay=1', { dataDir: dir });
    const chunks = Array.from({ length: 32 }, () => randomBytes(4096));
    const writes = await Promise.all(chunks.map((c, i) => d.write(i * 8, c)));
    expect(writes.every((w) => w.ok)).toBe(true);
    const reads = await Promise.all(chunks.map((_, i) => d.read(i * 8, 8)));
    reads.forEach((r, i) => {
      expect(r.ok && r.data.equals(chunks[i])).toBe(true);
    });
    await d.close();
  });
});
