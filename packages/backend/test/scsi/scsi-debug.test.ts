import { describe, expect, it } from 'vitest';
import {
  ComputedGuards,
  KERN_ERR,
  MemoryKernelLog,
  crc16T10Dif,
  generatePi,
  isPvblkError,
  type PiFormat,
} from '@pvblk/shared';
import {
  MemoryStore,
  ScsiDebugTarget,
  decodeSense,
  encodeRw,
  encodeSynchronizeCache10,
  encodeUnmap,
  encodeWriteSame16,
  parseScsiDebugParams,
  storeFormatFor,
  type ScsiResult,
} from '../../src/scsi/index.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function target(params: string, log = new MemoryKernelLog()) {
  const p = parseScsiDebugParams(`delay=0 ${params}`);
  const store = new MemoryStore(storeFormatFor(p));
  return { t: new ScsiDebugTarget({ params: p, store, log }), store, log };
}

const read10 = (lba: number, blocks: number, protect = 1) =>
  encodeRw({ write: false, size: 10, lba, blocks, protect });
const write10 = (lba: number, blocks: number, protect = 1) =>
  encodeRw({ write: true, size: 10, lba, blocks, protect });

function sense(r: ScsiResult) {
  const h = decodeSense(r.sense);
  return h ? [h.key, h.asc, h.ascq] : null;
}

function withPi(data: Buffer, seed: number, format: PiFormat, appTag = 0): Buffer {
  const pi = Buffer.alloc((data.length / 512) * 8);
  generatePi(data, pi, { format, seed, appTag });
  return pi;
}

const T1: PiFormat = { type: 1, guard: 'crc', interval: 512 };

describe('scsi_debug target: medium errors', () => {
  it('fails the seed read with MEDIUM ERROR and Info fld 0x1234', async () => {
    const { t } = target('dif=1 opts=34');
    const r = await t.queueCommand({ cdb: hex('28 20 00 00 12 30 00 00 08 00'), protIn: true });
    expect(r.status).toBe('CHECK_CONDITION');
    expect(r.hostByte).toBe('DID_OK');
    expect(r.sense).toEqual(hex('F0 00 03 00 00 12 34 0A 00 00 00 00 11 00 00 00 00 00'));
    expect(r.resid).toBe(4096);
    expect(r.dataIn).toBeUndefined();
    expect(t.stats().mediumErrors).toBe(1);
  });

  it('reports the starting LBA when the read starts inside the range', async () => {
    const { t } = target('opts=2');
    const r = await t.queueCommand({ cdb: read10(0x1238, 8, 0) });
    expect(r.sense!.readUInt32BE(3)).toBe(0x1238);
    // Just outside the range on either side.
    expect((await t.queueCommand({ cdb: read10(0x1234 - 8, 8, 0) })).status).toBe('GOOD');
    expect((await t.queueCommand({ cdb: read10(0x123e, 8, 0) })).status).toBe('GOOD');
  });

  it('keeps the constant 0x1234 in Info fld when medium_error_start moves, as every scsi_debug does', async () => {
    const { t } = target('opts=2 medium_error_start=100');
    const low = await t.queueCommand({ cdb: read10(96, 8, 0) });
    expect(sense(low)).toEqual([3, 0x11, 0]);
    expect(low.sense!.readUInt32BE(3)).toBe(0x1234);
    const { t: t2 } = target('opts=2 medium_error_start=4990 medium_error_count=20');
    const high = await t2.queueCommand({ cdb: read10(5000, 8, 0) });
    expect(high.sense!.readUInt32BE(3)).toBe(5000);
  });

  it('fills no Info field in descriptor format, and never fails writes', async () => {
    const { t } = target('opts=2 dsense=1');
    const r = await t.queueCommand({ cdb: read10(0x1230, 8, 0) });
    expect(r.sense).toEqual(hex('72 03 11 00 00 00 00 00'));
    const w = await t.queueCommand({ cdb: write10(0x1230, 8, 0), dataOut: Buffer.alloc(4096) });
    expect(w.status).toBe('GOOD');
  });

  it('is off without the MEDIUM_ERR bit, and switches on at runtime for the next command', async () => {
    const { t } = target('dif=1');
    expect((await t.queueCommand({ cdb: read10(0x1230, 8) })).status).toBe('GOOD');
    t.applyRuntimeParam('opts', '0x22');
    expect((await t.queueCommand({ cdb: read10(0x1230, 8) })).status).toBe('CHECK_CONDITION');
  });
});

describe('scsi_debug target: command checks', () => {
  it('rejects unknown opcodes, out-of-range LBAs and misplaced 32-byte CDBs', async () => {
    const { t } = target('dif=1');
    expect(sense(await t.queueCommand({ cdb: hex('12 00 00 00 24 00') }))).toEqual([5, 0x20, 0]);
    expect(sense(await t.queueCommand({ cdb: read10(16380, 8) }))).toEqual([5, 0x21, 0]);
    const r32 = encodeRw({ write: false, size: 32, lba: 0, blocks: 1, protect: 1 });
    expect(sense(await t.queueCommand({ cdb: r32 }))).toEqual([5, 0x24, 0]);
  });

  it('requires 32-byte CDBs for protected I/O on a Type 2 disk', async () => {
    const { t } = target('dif=2');
    expect(sense(await t.queueCommand({ cdb: read10(0, 8, 1) }))).toEqual([5, 0x20, 0]);
    const r32 = encodeRw({ write: false, size: 32, lba: 0, blocks: 8, protect: 1, expectedRef: 0 });
    expect((await t.queueCommand({ cdb: r32 })).status).toBe('GOOD');
  });

  it('logs unprotected I/O to a DIF disk', async () => {
    const { t, log } = target('dif=1');
    await t.queueCommand({ cdb: read10(0, 1, 0) });
    expect(log.lines(KERN_ERR)).toEqual(['Unprotected RD/WR to DIF device']);
  });

  it('announces the host protection like sdebug_driver_probe()', () => {
    expect(target('dif=1').log.lines()).toEqual(['scsi_debug: host protection DIF1']);
    expect(target('dif=3 dix=1').log.lines()).toEqual(['scsi_debug: host protection DIF3 DIX3']);
    expect(target('dix=1').log.lines()).toEqual(['scsi_debug: host protection DIX0']);
  });

  it('answers SYNCHRONIZE CACHE', async () => {
    const { t } = target('');
    expect((await t.queueCommand({ cdb: encodeSynchronizeCache10() })).status).toBe('GOOD');
  });

  it('refuses a store of the wrong format and fixed parameters at runtime', () => {
    const p = parseScsiDebugParams('dif=1');
    expect(
      () =>
        new ScsiDebugTarget({
          params: p,
          store: new MemoryStore({ blockSize: 512, blocks: 16384, pi: false }),
        }),
    ).toThrow(/does not match/);
    const { t } = target('dif=1');
    try {
      t.setParams({ ...t.params, dif: 3 });
      throw new Error('no throw');
    } catch (e) {
      expect(isPvblkError(e, 'EUSAGE')).toBe(true);
    }
  });
});

describe('scsi_debug target: protection information', () => {
  it('stores PI from the initiator and returns it', async () => {
    const { t, store } = target('dif=1');
    const data = Buffer.alloc(4096, 0x5a);
    const pi = withPi(data, 64, T1);
    expect((await t.queueCommand({ cdb: write10(64, 8), dataOut: data, protOut: pi })).status).toBe('GOOD');
    expect((await store.read(64, 8)).pi).toEqual(pi);
    const r = await t.queueCommand({ cdb: read10(64, 8), protIn: true });
    expect(r.status).toBe('GOOD');
    expect(r.dataIn).toEqual(data);
    expect(r.protIn).toEqual(pi);
    expect(t.stats()).toMatchObject({ dixWrites: 1, dixReads: 1, difErrors: 0 });
  });

  it('rejects a bad guard on WRITE with ABORTED COMMAND and dumps the sector', async () => {
    const { t, store, log } = target('dif=1');
    const data = Buffer.alloc(512, 0x41);
    const pi = withPi(data, 7, T1);
    pi[0] ^= 0xff;
    const r = await t.queueCommand({ cdb: write10(7, 1), dataOut: data, protOut: pi });
    expect(r.status).toBe('CHECK_CONDITION');
    expect(r.hostByte).toBe('DID_OK');
    expect(sense(r)).toEqual([0xb, 0x10, 1]);
    expect(r.failedSector).toBe(7);
    const good = crc16T10Dif(data);
    const lines = log.lines(KERN_ERR);
    expect(lines[0]).toBe(
      `prot_verify_write: GUARD check failed on sector 7 rcvd 0x${(good ^ 0xff00).toString(16).padStart(4, '0')}, calculated 0x${good.toString(16).padStart(4, '0')}`,
    );
    expect(lines[1]).toBe('>>> Sector Dump <<<');
    expect(lines[2]).toBe('0000:  A  A  A  A  A  A  A  A  A  A  A  A  A  A  A  A');
    expect(lines.length).toBe(2 + 32);
    expect((await store.read(7, 1)).data).toEqual(Buffer.alloc(512));
    expect(t.stats().difErrors).toBe(1);
  });

  it('reads the guards the HBA computed for the command, once: a retry of the same command computes its own', async () => {
    const { t, log } = target('dif=1');
    const data = Buffer.alloc(1024, 0x33);
    const pi = withPi(data, 20, T1);
    // guards recorded as if the HBA had computed them, one of them wrong: the target believes it
    const guards = new ComputedGuards(data, 'crc', 512);
    guards.set(0, crc16T10Dif(data, 0, 512));
    guards.set(1, crc16T10Dif(data, 512, 1024) ^ 1);
    const cmd = { cdb: write10(20, 2), dataOut: data, protOut: pi, guards };
    const r = await t.queueCommand(cmd);
    expect(sense(r)).toEqual([0xb, 0x10, 1]);
    expect(r.failedSector).toBe(21);
    expect(log.lines(KERN_ERR)[0]).toMatch(/^prot_verify_write: GUARD check failed on sector 21 /);
    // taken with the command: issued again, the target computes the guards and the write passes
    expect(cmd.guards).toBeUndefined();
    expect((await t.queueCommand(cmd)).status).toBe('GOOD');
    // recorded for another buffer (the same bytes): not used
    const other = new ComputedGuards(Buffer.from(data), 'crc', 512);
    other.set(0, 0);
    other.set(1, 0);
    expect((await t.queueCommand({ ...cmd, guards: other })).status).toBe('GOOD');
  });

  it('rejects a wrong reference tag on WRITE', async () => {
    const { t, log } = target('dif=1');
    const data = Buffer.alloc(1024, 1);
    const pi = withPi(data, 99, T1);
    const r = await t.queueCommand({ cdb: write10(100, 2), dataOut: data, protOut: pi });
    expect(sense(r)).toEqual([0xb, 0x10, 3]);
    expect(log.lines(KERN_ERR)[0]).toBe('prot_verify_write: REF check failed on sector 100');
  });

  it('skips the target check for WRPROTECT/RDPROTECT 011, then catches the bad PI on a checked read', async () => {
    const { t, log } = target('dif=1');
    const data = Buffer.alloc(512, 2);
    const pi = withPi(data, 9, T1);
    pi[1] ^= 1;
    expect((await t.queueCommand({ cdb: write10(9, 1, 3), dataOut: data, protOut: pi })).status).toBe('GOOD');
    expect((await t.queueCommand({ cdb: read10(9, 1, 3), protIn: true })).status).toBe('GOOD');
    const r = await t.queueCommand({ cdb: read10(9, 1, 1), protIn: true });
    expect(sense(r)).toEqual([0xb, 0x10, 1]);
    expect(log.lines(KERN_ERR)[0]).toMatch(
      /^prot_verify_read: GUARD check failed on sector 9 rcvd 0x[0-9a-f]{4}, data 0x[0-9a-f]{4}$/,
    );
  });

  it('never checks the application tag, and lets app tag 0xFFFF escape reads of every type', async () => {
    for (const dif of [1, 3] as const) {
      const { t, store } = target(`dif=${dif}`);
      const data = Buffer.alloc(512, 3);
      const pi = withPi(data, 5, { type: dif, guard: 'crc', interval: 512 }, 0xbeef);
      expect((await t.queueCommand({ cdb: write10(5, 1), dataOut: data, protOut: pi })).status).toBe('GOOD');
      // Corrupt the data under an escape tuple (ref not all-ones): scsi_debug still skips it.
      await store.write(5, Buffer.alloc(512, 4), hex('0000 ffff 00000001'));
      expect((await t.queueCommand({ cdb: read10(5, 1), protIn: true })).status).toBe('GOOD');
    }
  });

  it('checks Type 2 reference tags against the expected initial tag of the 32-byte CDB', async () => {
    const { t } = target('dif=2');
    const data = Buffer.alloc(1024, 6);
    const pi = withPi(data, 40, { type: 2, guard: 'crc', interval: 512 });
    const w = encodeRw({ write: true, size: 32, lba: 10, blocks: 2, protect: 1, expectedRef: 40 });
    expect((await t.queueCommand({ cdb: w, dataOut: data, protOut: pi })).status).toBe('GOOD');
    const ok = encodeRw({ write: false, size: 32, lba: 10, blocks: 2, protect: 1, expectedRef: 40 });
    expect((await t.queueCommand({ cdb: ok, protIn: true })).status).toBe('GOOD');
    const bad = encodeRw({ write: false, size: 32, lba: 10, blocks: 2, protect: 1, expectedRef: 10 });
    expect(sense(await t.queueCommand({ cdb: bad, protIn: true }))).toEqual([0xb, 0x10, 3]);
  });

  it('numbers the 8 tuples of a 4 KiB block by 512-byte interval', async () => {
    const { t } = target('dif=1 sector_size=4096');
    const data = Buffer.alloc(8192, 7);
    const pi = withPi(data, 3 * 8, T1);
    expect(pi.length).toBe(128);
    expect((await t.queueCommand({ cdb: write10(3, 2), dataOut: data, protOut: pi })).status).toBe('GOOD');
    const r = await t.queueCommand({ cdb: read10(3, 2), protIn: true });
    expect(r.protIn).toEqual(pi);
    const wrong = withPi(data, 3, T1);
    expect(sense(await t.queueCommand({ cdb: write10(3, 2), dataOut: data, protOut: wrong }))).toEqual([
      0xb, 0x10, 3,
    ]);
  });

  it('uses the IP checksum as guard with guard=1', async () => {
    const { t } = target('dif=1 guard=1');
    const data = Buffer.alloc(512, 9);
    expect(
      (
        await t.queueCommand({
          cdb: write10(1, 1),
          dataOut: data,
          protOut: withPi(data, 1, { ...T1, guard: 'ip' }),
        })
      ).status,
    ).toBe('GOOD');
    expect(
      sense(await t.queueCommand({ cdb: write10(2, 1), dataOut: data, protOut: withPi(data, 2, T1) })),
    ).toEqual([0xb, 0x10, 1]);
  });
});

describe('scsi_debug target: every_nth injection (1.82)', () => {
  it('fails every third command with DIF_ERR: ABORTED COMMAND 0x10/0x01 and DID_ABORT', async () => {
    const { t } = target('dif=1 opts=0x20 every_nth=3');
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await t.queueCommand({ cdb: read10(0, 1) }));
    expect(results.map((r) => r.status)).toEqual([
      'GOOD',
      'GOOD',
      'CHECK_CONDITION',
      'GOOD',
      'GOOD',
      'CHECK_CONDITION',
    ]);
    expect(results[2].hostByte).toBe('DID_ABORT');
    expect(sense(results[2])).toEqual([0xb, 0x10, 1]);
    expect(t.procInfo()).toContain('every_nth=3(curr:0)');
  });

  it('with a negative every_nth fires once after |n| commands, then on every command', async () => {
    const { t } = target('opts=0x40 every_nth=-2');
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await t.queueCommand({ cdb: read10(0, 1, 0) })).status);
    expect(statuses).toEqual(['GOOD', 'CHECK_CONDITION', 'CHECK_CONDITION', 'CHECK_CONDITION']);
    expect(t.params.every_nth).toBe(-1);
  });

  it('arms only the first bit of the chain: TIMEOUT before DIF_ERR', async () => {
    const { t } = target('opts=0x24 every_nth=1');
    expect((await t.queueCommand({ cdb: read10(0, 1, 0) })).status).toBe('TIMEOUT');
    expect(t.stats().timeouts).toBe(1);
  });

  it('drops an armed error when the command fails anyway or is not a read/write', async () => {
    const { t } = target('opts=0x22 every_nth=1');
    // The medium error wins; the DIF_ERR armed for this command is lost.
    expect(sense(await t.queueCommand({ cdb: read10(0x1230, 8, 0) }))).toEqual([3, 0x11, 0]);
    expect((await t.queueCommand({ cdb: encodeSynchronizeCache10() })).status).toBe('GOOD');
  });

  it('does not inject TRANSPORT_ERR into writes, but does into reads', async () => {
    const { t } = target('opts=0x10 every_nth=1');
    expect((await t.queueCommand({ cdb: write10(0, 1, 0), dataOut: Buffer.alloc(512) })).status).toBe('GOOD');
    const r = await t.queueCommand({ cdb: read10(0, 1, 0) });
    expect(sense(r)).toEqual([0xb, 0x4b, 3]);
    expect(r.dataIn).toEqual(Buffer.alloc(512));
  });

  it('reports RECOVERED ERROR on a read that returned its data', async () => {
    const { t } = target('opts=8 every_nth=1');
    const r = await t.queueCommand({ cdb: read10(0, 2, 0) });
    expect(sense(r)).toEqual([1, 0x5d, 0]);
    expect(r.dataIn!.length).toBe(1024);
  });

  it('restarts the count when opts or every_nth is written', async () => {
    const { t } = target('opts=0x20 every_nth=2');
    await t.queueCommand({ cdb: read10(0, 1, 0) });
    expect(t.stats().cmndCount).toBe(1);
    t.applyRuntimeParam('opts', '0x40');
    expect(t.stats().cmndCount).toBe(0);
    expect((await t.queueCommand({ cdb: read10(0, 1, 0) })).status).toBe('GOOD');
    expect(sense(await t.queueCommand({ cdb: read10(0, 1, 0) }))).toEqual([5, 0x10, 1]);
  });

  it('halves a read with SHORT_TRANSFER and reports the residue', async () => {
    const { t } = target('opts=0x100 every_nth=1');
    const r = await t.queueCommand({ cdb: read10(0, 8, 0) });
    expect(r.status).toBe('GOOD');
    expect(r.dataIn!.length).toBe(2048);
    expect(r.resid).toBe(2048);
  });

  it('refuses with HOST_BUSY and TASK SET FULL', async () => {
    expect((await target('opts=0x8000 every_nth=1').t.queueCommand({ cdb: read10(0, 1, 0) })).status).toBe(
      'HOST_BUSY',
    );
    expect((await target('opts=0x800 every_nth=1').t.queueCommand({ cdb: read10(0, 1, 0) })).status).toBe(
      'TASK_SET_FULL',
    );
  });
});

describe('scsi_debug target: provisioning', () => {
  it('unmaps with WRITE SAME(16) only when lbpws=1: zero data, all-ones PI', async () => {
    const { t: off } = target('dif=1');
    expect(
      sense(await off.queueCommand({ cdb: encodeWriteSame16(0, 1, true), dataOut: Buffer.alloc(512) })),
    ).toEqual([5, 0x24, 0]);
    const { t, store } = target('dif=1 lbpws=1');
    const data = Buffer.alloc(1024, 8);
    await t.queueCommand({ cdb: write10(20, 2), dataOut: data, protOut: withPi(data, 20, T1) });
    expect(
      (await t.queueCommand({ cdb: encodeWriteSame16(20, 2, true), dataOut: Buffer.alloc(512) })).status,
    ).toBe('GOOD');
    expect(await store.read(20, 2)).toEqual({ data: Buffer.alloc(1024), pi: Buffer.alloc(16, 0xff) });
  });

  it('replicates the block for WRITE SAME without UNMAP', async () => {
    const { t, store } = target('');
    const block = Buffer.alloc(512, 0x33);
    expect((await t.queueCommand({ cdb: encodeWriteSame16(4, 3, false), dataOut: block })).status).toBe(
      'GOOD',
    );
    expect((await store.read(4, 3)).data).toEqual(Buffer.alloc(1536, 0x33));
  });

  it('answers UNMAP only with lbpu=1', async () => {
    const u = encodeUnmap([{ lba: 2, blocks: 2 }]);
    expect(sense(await target('').t.queueCommand({ cdb: u.cdb, dataOut: u.params }))).toEqual([5, 0x20, 0]);
    const { t, store } = target('lbpu=1');
    await store.write(2, Buffer.alloc(1024, 1));
    expect((await t.queueCommand({ cdb: u.cdb, dataOut: u.params })).status).toBe('GOOD');
    expect((await store.read(2, 2)).data).toEqual(Buffer.alloc(1024));
    const far = encodeUnmap([{ lba: 16383, blocks: 2 }]);
    expect(sense(await t.queueCommand({ cdb: far.cdb, dataOut: far.params }))).toEqual([5, 0x21, 0]);
  });
});

describe('scsi_debug target: /proc', () => {
  it('prints the 1.82 proc page', async () => {
    const { t } = target('dif=1 opts=34');
    await t.queueCommand({ cdb: read10(0x1230, 8) });
    expect(t.procInfo()).toBe(
      'scsi_debug adapter driver, version 1.82 [20100324]\n' +
        'num_tgts=1, shared (ram) size=8 MB, opts=0x22, every_nth=0(curr:0)\n' +
        'delay=0, max_luns=1, scsi_level=5\n' +
        'sector_size=512 bytes, cylinders=64, heads=8, sectors=32\n' +
        'number of aborts=0, device_reset=0, bus_resets=0, host_resets=0\n' +
        'dix_reads=0 dix_writes=0 dif_errors=0\n',
    );
    expect(t.stats()).toMatchObject({ commands: 1, mediumErrors: 1 });
  });
});

describe('scsi_debug target: NOISE', () => {
  it('prints the CDB, the sense triple and the non-zero result like 1.82', async () => {
    const { t, log } = target('dif=1 opts=3');
    await t.queueCommand({ cdb: read10(0x1230, 8) });
    expect(log.lines().slice(1)).toEqual([
      'scsi_debug: cmd 28 20 00 00 12 30 00 00 08 00',
      'scsi_debug:    [sense_key,asc,ascq]: [0x3,0x11,0x0]',
      'scsi_debug:    <9 0 0 0> non-zero result=0x8000002',
    ]);
  });
});
