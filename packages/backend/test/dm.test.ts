/**
 * The device-mapper stack under blkback: dm-flakey's up/down cycle and features, dm-dust's bad blocks
 * and messages, dm-delay's per-direction latency, and the dmsetup-like create/reload/remove — with bad
 * tables refused by name, as dm's constructors refuse them.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKernelLog } from '@pvblk/shared';
import { MemoryBlockDevice } from '../src/memory-device.ts';
import { DmStack, MAX_DM_LAYERS } from '../src/dm/stack.ts';
import type { FlakeyTarget } from '../src/dm/flakey.ts';
import type { DustTarget } from '../src/dm/dust.ts';

const SECTORS = 2048;

function setup() {
  const base = new MemoryBlockDevice({ name: 'sdg', sectors: SECTORS });
  const klog = new MemoryKernelLog();
  let clock = 0;
  const dm = new DmStack(base, ['/dev/sdg', '8:96'], klog, () => clock);
  return {
    base,
    klog,
    dm,
    advance: (ms: number) => (clock += ms),
    lines: () => klog.lines(),
  };
}

const block = (v: number) => Buffer.alloc(4096, v);

describe('an empty stack', () => {
  it('is the disk', async () => {
    const { base, dm } = setup();
    expect((await dm.write(8, block(1))).ok).toBe(true);
    expect(base.data.subarray(4096, 8192).equals(block(1))).toBe(true);
    expect(dm.sectors).toBe(SECTORS);
    expect(dm.list()).toEqual([]);
  });
});

describe('dm-flakey', () => {
  it('is up for <up> seconds, then down for <down>, cycling from the table load', async () => {
    const { dm, advance } = setup();
    dm.create('fl', `0 ${SECTORS} flakey /dev/sdg 0 2 1`);
    const t = dm.target('fl') as FlakeyTarget;
    expect((await dm.read(0, 8)).ok).toBe(true);
    advance(2000);
    expect(t.isDown()).toBe(true);
    const r = await dm.read(0, 8);
    expect(r.ok).toBe(false); // no feature: every I/O fails while down
    expect((await dm.write(0, block(2))).ok).toBe(false);
    advance(1000);
    expect((await dm.read(0, 8)).ok).toBe(true);
    expect(dm.list()[0]).toEqual({
      counters: { readsFailed: 1, writesFailed: 1, writesDropped: 0, corrupted: 0 },
      name: 'fl',
      table: `0 ${SECTORS} flakey /dev/sdg 0 2 1 2 error_reads error_writes`, // what Linux fills in
      status: `0 ${SECTORS} flakey up`,
      pending: 0,
    });
  });

  it('drop_writes: writes complete and vanish; reads are served', async () => {
    const { dm, base } = setup();
    await dm.write(0, block(5));
    dm.create('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 1 drop_writes`);
    expect((await dm.write(0, block(6))).ok).toBe(true);
    expect(base.data.subarray(0, 4096).equals(block(5))).toBe(true);
    const r = await dm.read(0, 8);
    expect(r.ok && r.data.equals(block(5))).toBe(true);
    expect((dm.target('fl') as FlakeyTarget).counters.writesDropped).toBe(1);
  });

  it('error_reads and error_writes fail one direction each', async () => {
    const { dm } = setup();
    dm.create('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 1 error_reads`);
    expect((await dm.read(0, 8)).ok).toBe(false);
    expect((await dm.write(0, block(1))).ok).toBe(true);
    dm.reload('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 1 error_writes`);
    expect((await dm.read(0, 8)).ok).toBe(true);
    const w = await dm.write(0, block(1));
    expect(w.ok ? null : w.error.kind).toBe('target');
  });

  it('corrupt_bio_byte replaces byte N of reads after the device, of writes in a copy before it', async () => {
    const { dm, base } = setup();
    await dm.write(0, block(0x11));
    dm.create('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 5 corrupt_bio_byte 32 r 1 0`);
    const r = await dm.read(0, 8);
    expect(r.ok && r.data[31]).toBe(1);
    expect(base.data[31]).toBe(0x11); // the medium is intact
    dm.reload('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 5 corrupt_bio_byte 1 w 0 0`);
    const mine = block(0x22);
    expect((await dm.write(0, mine)).ok).toBe(true);
    expect(mine[0]).toBe(0x22); // the caller's buffer is untouched
    expect(base.data[0]).toBe(0);
    expect(base.data[1]).toBe(0x22);
  });

  it('refuses bad tables as dm-flakey does', () => {
    const { dm } = setup();
    const err = (t: string) => {
      try {
        dm.create('x', t);
        dm.remove('x');
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 0 0`)).toMatch(/Total \(up \+ down\) interval is zero/);
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 1 1 2 drop_writes error_writes`)).toMatch(
      /error_writes conflicts with feature drop_writes/,
    );
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 1 1 5 corrupt_bio_byte 1 w 0 0`)).toBe('ok');
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 1 1 6 drop_writes corrupt_bio_byte 1 w 0 0`)).toMatch(
      /drop_writes is incompatible with corrupt_bio_byte/,
    );
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 1 1 1 explode`)).toMatch(
      /Unrecognised flakey feature requested: explode/,
    );
    expect(err(`0 ${SECTORS} flakey /dev/sdh 0 1 1`)).toMatch(/device \/dev\/sdh is not the device below/);
    expect(err(`0 ${SECTORS} flakey /dev/sdg 0 1 1 3 drop_writes`)).toMatch(/Invalid number of feature args/);
    expect(err(`0 100 flakey /dev/sdg 0 1 1`)).toMatch(/must map the whole device/);
    expect(err(`0 ${SECTORS} mirror /dev/sdg 0`)).toMatch(/unknown target type "mirror"/);
    // an area past the end of the device below, as dm-table refuses it
    for (const t of [
      'linear /dev/sdg 8',
      'flakey /dev/sdg 1 1 1',
      'dust /dev/sdg 8 4096',
      'delay /dev/sdg 8 0',
    ])
      expect(err(`0 ${SECTORS} ${t}`)).toBe(
        `EINVAL: /dev/sdg too small for target: start=${t.split(' ')[2]}, len=${SECTORS}, dev_size=${SECTORS}`,
      );
  });

  it('knows only its own target types: names every object inherits are unknown, and nothing is stacked', async () => {
    const { dm } = setup();
    for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty'])
      expect(() => dm.create('x', `0 ${SECTORS} ${type}`)).toThrow(`unknown target type "${type}"`);
    expect(dm.list()).toEqual([]);
    expect((await dm.read(0, 8)).ok).toBe(true);
    dm.create('x', `0 ${SECTORS} linear /dev/sdg 0`);
    expect(() => dm.reload('x', `0 ${SECTORS} constructor`)).toThrow(/unknown target type/);
    expect(dm.list().map((l) => l.table)).toEqual([`0 ${SECTORS} linear /dev/sdg 0`]);
    dm.remove('x');
    expect(dm.list()).toEqual([]);
  });
});

describe('dm-dust', () => {
  it('fails reads of bad blocks once enabled; a write remaps the block; messages answer as the kernel logs', async () => {
    const { dm, lines } = setup();
    dm.create('dust1', `0 ${SECTORS} dust /dev/sdg 0 4096`);
    expect(dm.message('dust1', 'addbadblock 3')).toBe('badblock added at block 3 with write fail count 0');
    expect(() => dm.message('dust1', 'addbadblock 3')).toThrow(/block 3 already in badblocklist/);
    expect((await dm.read(24, 8)).ok).toBe(true); // bypass
    expect(dm.list()[0].status).toBe(`0 ${SECTORS} dust /dev/sdg bypass verbose`);
    dm.message('dust1', 'enable');
    const r = await dm.read(16, 16); // blocks 2 and 3
    expect(r.ok ? null : r.error).toMatchObject({ kind: 'medium', badSector: 24 });
    expect(dm.message('dust1', 'queryblock 3')).toBe('queryblock: block 3 found in badblocklist');
    expect((await dm.write(24, block(9))).ok).toBe(true);
    expect((await dm.read(24, 8)).ok).toBe(true);
    expect(dm.message('dust1', 'countbadblocks')).toBe('countbadblocks: 0 badblock(s) found');
    dm.message('dust1', 'quiet');
    dm.message('dust1', 'addbadblock 7');
    expect(dm.list()[0].status).toBe(`0 ${SECTORS} dust /dev/sdg fail_read_on_bad_block quiet`);
    expect(dm.message('dust1', 'clearbadblocks')).toBe('clearbadblocks: badblocks cleared');
    expect(dm.message('dust1', 'clearbadblocks')).toBe('clearbadblocks: no badblocks found');
    expect(() => dm.message('dust1', 'removebadblock 7')).toThrow(/block 7 not found in badblocklist/);
    expect(() => dm.message('dust1', 'addbadblock 99999')).toThrow(/out of range/);
    expect(() => dm.message('dust1', 'frobnicate')).toThrow(/unrecognised message "frobnicate"/);
    expect(lines()).toContain('device-mapper: dust: badblock added at block 3 with write fail count 0');
    expect(lines()).toContain('device-mapper: dust: block 3 removed from badblocklist by write');
    expect(lines().some((l) => l.includes('badblock added at block 7'))).toBe(false); // quiet
    expect((dm.target('dust1') as DustTarget).counters).toEqual({
      readsFailed: 1,
      writesFailed: 0,
      remapped: 1,
    });
  });

  it('a write fail count fails that many writes to the block, then a write remaps it; listbadblocks lists them', async () => {
    const { dm, base } = setup();
    dm.create('dust1', `0 ${SECTORS} dust /dev/sdg 0 4096`);
    expect(dm.message('dust1', 'listbadblocks')).toBe('');
    expect(dm.message('dust1', 'addbadblock 5 2')).toBe('badblock added at block 5 with write fail count 2');
    dm.message('dust1', 'addbadblock 1');
    expect(dm.message('dust1', 'listbadblocks')).toBe('1\n5\n');
    dm.message('dust1', 'enable');
    // blocks 4-6 in one write: block 5 fails it (twice), blocks 4 and 6 are written
    for (let i = 0; i < 2; i++) {
      const r = await dm.write(32, Buffer.alloc(3 * 4096, 7 + i));
      expect(r.ok ? null : r.error).toMatchObject({ kind: 'target', sector: 40 });
      expect([base.data[32 * 512], base.data[40 * 512], base.data[48 * 512]]).toEqual([7 + i, 0, 7 + i]);
    }
    expect(dm.message('dust1', 'listbadblocks')).toBe('1\n5\n');
    expect((await dm.write(40, block(9))).ok).toBe(true); // the count is spent: remapped
    expect(base.data[40 * 512]).toBe(9);
    expect(dm.message('dust1', 'listbadblocks')).toBe('1\n');
    expect((dm.target('dust1') as DustTarget).counters).toMatchObject({ writesFailed: 2, remapped: 1 });
    for (const bad of ['addbadblock 2 256', 'addbadblock 2 -1', 'addbadblock 2 x', 'addbadblock 2 1 1'])
      expect(() => dm.message('dust1', bad), bad).toThrow(
        /Invalid write fail count|takes a block and a write fail count/,
      );
    expect(() => dm.message('dust1', 'listbadblocks 1')).toThrow(/takes no argument/);
  });

  it('refuses a block size that is not a power of two from 512', () => {
    const { dm } = setup();
    expect(() => dm.create('d', `0 ${SECTORS} dust /dev/sdg 0 1000`)).toThrow(
      /Invalid block size parameter 1000/,
    );
  });
});

describe('dm-delay', () => {
  it('holds reads and writes for their own delays, and releases held I/O when removed', async () => {
    const { dm } = setup();
    dm.create('slow', `0 ${SECTORS} delay /dev/sdg 0 0 /dev/sdg 0 60000`);
    const t0 = Date.now();
    expect((await dm.read(0, 8)).ok).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
    let done = false;
    const w = dm.write(0, block(3)).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    expect(dm.list()[0].pending).toBe(1);
    dm.remove('slow');
    expect((await w).ok).toBe(true);
    expect(dm.list()).toEqual([]);
  });

  it('takes 3, 6 or 9 arguments', () => {
    const { dm } = setup();
    expect(() => dm.create('d', `0 ${SECTORS} delay /dev/sdg 0`)).toThrow(/exactly 3, 6 or 9 arguments/);
  });
});

describe('stacking', () => {
  it('layers sit on the one below, by name; only the top can be removed', async () => {
    const { dm, base } = setup();
    dm.create('dust1', `0 ${SECTORS} dust 8:96 0 512`);
    expect(() => dm.create('fl', `0 ${SECTORS} flakey /dev/sdg 0 0 60 1 drop_writes`)).toThrow(
      /not the device below this target \(\/dev\/mapper\/dust1\)/,
    );
    dm.create('fl', `0 ${SECTORS} flakey /dev/mapper/dust1 0 0 60 1 drop_writes`);
    expect(() => dm.create('fl', `0 ${SECTORS} linear /dev/mapper/fl 0`)).toThrow(/already exists/);
    expect(() => dm.remove('dust1')).toThrow(/dust1 is in use by fl/);
    await dm.write(0, block(4));
    expect(base.data[0]).toBe(0);
    dm.remove('fl');
    await dm.write(0, block(4));
    expect(base.data[0]).toBe(4);
    dm.clear();
    expect(dm.list()).toEqual([]);
  });

  it('a layer reloaded under another one: the upper layer maps onto the new table, as after dmsetup resume', async () => {
    const { dm, base } = setup();
    dm.create('a', `0 ${SECTORS} linear /dev/sdg 0`);
    dm.create('b', `0 ${SECTORS} linear /dev/mapper/a 0`);
    await dm.write(0, block(1));
    expect(base.data[0]).toBe(1);
    // the table shown and the I/O path agree: b's I/O now meets a's error target
    dm.reload('a', `0 ${SECTORS} error`);
    expect(dm.list().map((l) => l.table)).toEqual([
      `0 ${SECTORS} error`,
      `0 ${SECTORS} linear /dev/mapper/a 0`,
    ]);
    expect((await dm.read(0, 8)).ok).toBe(false);
    expect((await dm.write(0, block(2))).ok).toBe(false);
    expect(base.data[0]).toBe(1);
    // and back to linear: I/O reaches the disk again
    dm.reload('a', `0 ${SECTORS} linear /dev/sdg 0`);
    expect((await dm.write(0, block(3))).ok).toBe(true);
    expect(base.data[0]).toBe(3);
  });

  it(`stops at ${MAX_DM_LAYERS} layers with a message saying so; I/O through the deepest works`, async () => {
    const { dm } = setup();
    let below = '/dev/sdg';
    for (let i = 0; i < MAX_DM_LAYERS; i++) {
      dm.create(`l${i}`, `0 ${SECTORS} linear ${below} 0`);
      below = `/dev/mapper/l${i}`;
    }
    expect(() => dm.create('one-more', `0 ${SECTORS} linear ${below} 0`)).toThrow(
      `a disk may have at most ${MAX_DM_LAYERS} device-mapper layers`,
    );
    expect((await dm.write(8, block(9))).ok).toBe(true);
    const r = await dm.read(8, 8);
    expect(r.ok && r.data[0]).toBe(9);
  });
});
