/**
 * dd and human_readable against exact strings. Expected values are derived from coreutils 8.13
 * src/dd.c and gnulib lib/human.c (see the comments in dd.ts and human.ts), not from running this
 * implementation; the derivations of the less obvious ones are spelled out next to them.
 */
import { describe, expect, it } from 'vitest';
import { dd, parseDdNumber, quote } from '../src/guest/dd.ts';
import { ddRate, ddSize, formatFixed, formatG } from '../src/guest/human.ts';
import type { GuestCommandContext } from '../src/guest/vfs.ts';
import { MemoryVfs, failReadsCovering, failWritesFrom } from './memory-vfs.ts';

const SEC = 1_000_000_000n;
const T0 = 5_000_000_000n;

/** A clock that returns the given instants in turn, then stays at the last one. */
function clock(...instants: bigint[]): () => bigint {
  let i = 0;
  return () => instants[Math.min(i++, instants.length - 1)];
}

/** dd sees 0.25 s pass between its start and its statistics: exact in both the %g and the rate. */
const quarterSecond = (): (() => bigint) => clock(T0, T0 + SEC / 4n);

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

async function runDd(
  cmdline: string,
  vfs: MemoryVfs,
  now: () => bigint = quarterSecond(),
  signal: AbortSignal = new AbortController().signal,
): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const ctx: GuestCommandContext = { vfs, now };
  const status = await dd(
    cmdline.split(' '),
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), signal },
    ctx,
  );
  return { status, stdout, stderr };
}

const MiB = 1024 * 1024;

/** Byte-array equality without vitest's slow element-by-element diff of megabyte arrays. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  const i = actual.findIndex((b, k) => b !== expected[k]);
  expect(i, `first differing byte at ${i}`).toBe(-1);
}

function pattern(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('human_readable (gnulib human.c)', () => {
  it('autoscales sizes with the integer path: one decimal only below 10', () => {
    expect(ddSize(0n)).toBe('0 B');
    expect(ddSize(1n)).toBe('1 B');
    expect(ddSize(512n)).toBe('512 B');
    expect(ddSize(999n)).toBe('999 B');
    expect(ddSize(1000n)).toBe('1.0 kB');
    expect(ddSize(40960n)).toBe('41 kB');
    expect(ddSize(2383872n)).toBe('2.4 MB');
    expect(ddSize(8388608n)).toBe('8.4 MB');
    expect(ddSize(83886080n)).toBe('84 MB');
    expect(ddSize(1048576n)).toBe('1.0 MB');
    // 9.999 k: tenths round up to 10, carrying into amt = 10, which no longer gets a decimal.
    expect(ddSize(9999n)).toBe('10 kB');
    // 99.999 k rounds to 100 k; 999.999 k rounds to 1000 k = base, which becomes 1.0 M.
    expect(ddSize(99999n)).toBe('100 kB');
    expect(ddSize(999999n)).toBe('1.0 MB');
    expect(ddSize(4096n)).toBe('4.1 kB');
    expect(ddSize((1n << 64n) - 1n)).toBe('18 EB');
  });

  it('rates: floating path keeps one decimal below 100 (SI), integer path only below 10', () => {
    // The seed transcript: 76.7866 s does not divide 1e9 -> long double path -> 31.04557 k -> "31.0".
    expect(ddRate(2383872n, 76_786_600_000n)).toBe('31.0 kB');
    // 0.5 s: 1e9 % 5e8 == 0 -> exact integer path, 16.777216 M has amt 16 >= 10 -> "17 MB".
    expect(ddRate(8388608n, 500_000_000n)).toBe('17 MB');
    // 0.500000001 s: floating path, 16.777 < 100 -> "16.8 MB".
    expect(ddRate(8388608n, 500_000_001n)).toBe('16.8 MB');
    expect(ddRate(8388608n, 2n * SEC)).toBe('4.2 MB');
    expect(ddRate(40960n, SEC / 4n)).toBe('164 kB');
    expect(ddRate(123n, SEC)).toBe('123 B');
    // 512 B in 3 s: divisor 3 -> 170.67 -> "171 B" (integer path never scales below the base).
    expect(ddRate(512n, 3n * SEC)).toBe('171 B');
    // The floating path always divides by the base at least once: slow rates show as "0.x kB".
    expect(ddRate(100n, 1_500_000_000n)).toBe('0.1 kB');
    expect(ddRate(0n, 1_500_000_000n)).toBe('0.0 kB');
    expect(ddRate(0n, SEC / 4n)).toBe('0 B');
    // 123456 B/s in the floating path: 123.456 k has 3 integer digits -> "%.0Lf" -> "123 kB".
    expect(ddRate(123456n * 3n, 3_000_000_001n)).toBe('123 kB');
  });

  it('formats seconds like printf %g and %.0f (ties to even on the exact binary value)', () => {
    expect(formatG(76.7866)).toBe('76.7866');
    expect(formatG(0.25)).toBe('0.25');
    expect(formatG(2)).toBe('2');
    expect(formatG(0)).toBe('0');
    expect(formatG(1.234567)).toBe('1.23457');
    expect(formatG(0.0001)).toBe('0.0001');
    expect(formatG(0.00001234)).toBe('1.234e-05');
    expect(formatG(123456789)).toBe('1.23457e+08');
    expect(formatG(999999.5)).toBe('1e+06');
    // 10000.25 is exact in binary: a true tie at 6 digits, glibc rounds it to even.
    expect(formatG(10000.25)).toBe('10000.2');
    expect(formatG(1234565)).toBe('1.23456e+06');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(1.2, 0)).toBe('1');
  });
});

describe('dd operand parsing', () => {
  it('parses numbers with coreutils suffixes and x products', () => {
    const cases: Array<[string, bigint | null]> = [
      ['512', 512n],
      ['1c', 1n],
      ['1w', 2n],
      ['1b', 512n],
      ['b', 512n], // a suffix alone counts as 1
      ['1kB', 1000n],
      ['1K', 1024n],
      ['1KiB', 1024n],
      ['1KB', 1000n],
      ['1M', 1048576n],
      ['1MB', 1000000n],
      ['1G', 1073741824n],
      ['1GB', 1000000000n],
      ['1E', 1152921504606846976n],
      ['2x512', 1024n],
      ['1Kx2', 2048n],
      ['2x3x4', 24n],
      ['0x10', 0n], // strtoumax stops at the x: 0 times 10
      [' 5', 5n],
      ['+5', 5n],
      ['12x', null],
      ['1g', null], // lower-case g is not among dd's suffixes
      ['1k', 1024n],
      ['-1', null],
      ['', null],
      ['5 ', null],
      ['16E', null], // overflows uintmax_t
      ['1KBx', null],
    ];
    for (const [text, value] of cases) expect([text, parseDdNumber(text)]).toEqual([text, value]);
  });

  it('quotes names the 8.x way', () => {
    expect(quote('/dev/xvda')).toBe("`/dev/xvda'");
    expect(quote("it's")).toBe("`it\\'s'");
    expect(quote('a\nb')).toBe("`a\\nb'");
  });

  it.each([
    ['dd foo', "dd: unrecognized operand `foo'\nTry `dd --help' for more information.\n"],
    ['dd foo=1', "dd: unrecognized operand `foo'\nTry `dd --help' for more information.\n"],
    ['dd if=/dev/zero bs=12x', "dd: invalid number `12x'\n"],
    ['dd bs=0', "dd: invalid number `0'\n"],
    ['dd count=1q', "dd: invalid number `1q'\n"],
    ['dd conv=foo', "dd: invalid conversion: `foo'\nTry `dd --help' for more information.\n"],
    ['dd conv=notrunc,bogus', "dd: invalid conversion: `bogus'\nTry `dd --help' for more information.\n"],
    // names every object inherits are not conversions
    ['dd conv=constructor', "dd: invalid conversion: `constructor'\nTry `dd --help' for more information.\n"],
    ['dd conv=__proto__', "dd: invalid conversion: `__proto__'\nTry `dd --help' for more information.\n"],
    ['dd iflag=binary', "dd: invalid input flag: `binary'\nTry `dd --help' for more information.\n"],
    ['dd oflag=nope', "dd: invalid output flag: `nope'\nTry `dd --help' for more information.\n"],
    ['dd oflag=fullblock', "dd: invalid output flag: 'fullblock'\nTry `dd --help' for more information.\n"],
    ['dd status=loud', "dd: invalid status flag: `loud'\nTry `dd --help' for more information.\n"],
    ['dd conv=lcase,ucase', 'dd: cannot combine lcase and ucase\n'],
    ['dd conv=excl,nocreat', 'dd: cannot combine excl and nocreat\n'],
    ['dd iflag=direct,nocache', 'dd: cannot combine direct and nocache\n'],
    ['dd -x', "dd: invalid option -- 'x'\nTry `dd --help' for more information.\n"],
    ['dd --bogus', "dd: unrecognized option '--bogus'\nTry `dd --help' for more information.\n"],
    [
      'dd if=/dev/zero of=/dev/null bs=1G',
      'dd: memory exhausted by input buffer of size 1073741824 bytes (1.0 GiB)\n',
    ],
    [
      'dd if=/dev/zero of=/dev/null obs=300M',
      'dd: memory exhausted by output buffer of size 314572800 bytes (300 MiB)\n',
    ],
  ])('%s', async (cmdline, stderr) => {
    const r = await runDd(cmdline, new MemoryVfs());
    expect(r).toEqual({ status: 1, stdout: '', stderr });
  });

  it('prints help for a lone --help', async () => {
    const r = await runDd('dd --help', new MemoryVfs());
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: dd \[OPERAND\]\.\.\.\n/);
  });
});

describe('dd copying', () => {
  it('reproduces the seed transcript: EIO at sector 4656 after 76.7866 s', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 8 * MiB, { write: failWritesFrom(4656 * 512) });
    const r = await runDd('dd if=/dev/zero of=/dev/xvda', vfs, clock(T0, T0 + 76_786_600_000n));
    expect(r).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "dd: writing to `/dev/xvda': Input/output error\n" +
        '4657+0 records in\n' +
        '4656+0 records out\n' +
        '2383872 bytes (2.4 MB) copied, 76.7866 s, 31.0 kB/s\n',
    });
    expect(vfs.stats('/dev/xvda').closes).toBe(1);
  });

  it('fills an 8 MiB device with bs=512: the 16385th write gets ENOSPC ("writing", bs= path)', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 8 * MiB);
    const r = await runDd('dd if=/dev/zero of=/dev/xvda bs=512', vfs, clock(T0, T0 + 2n * SEC));
    expect(r).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "dd: writing `/dev/xvda': No space left on device\n" +
        '16385+0 records in\n' +
        '16384+0 records out\n' +
        '8388608 bytes (8.4 MB) copied, 2 s, 4.2 MB/s\n',
    });
  });

  it('fills an 8 MiB device without bs=: the obs path says "writing to"', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 8 * MiB);
    const r = await runDd('dd if=/dev/urandom of=/dev/xvda', vfs, clock(T0, T0 + 2n * SEC));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "dd: writing to `/dev/xvda': No space left on device\n" +
        '16385+0 records in\n' +
        '16384+0 records out\n' +
        '8388608 bytes (8.4 MB) copied, 2 s, 4.2 MB/s\n',
    );
  });

  it('a short write at the device end: bs= does not count the partial record, obs= does', async () => {
    // 8388608 = 2796 * 3000 + 608: write 2797 is cut to 608 bytes, the retry gets ENOSPC.
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 8 * MiB);
    const a = await runDd('dd if=/dev/zero of=/dev/xvda bs=3000', vfs, clock(T0, T0 + 2n * SEC));
    expect(a.stderr).toBe(
      "dd: writing `/dev/xvda': No space left on device\n" +
        '2797+0 records in\n' +
        '2796+0 records out\n' +
        '8388608 bytes (8.4 MB) copied, 2 s, 4.2 MB/s\n',
    );
    const b = await runDd('dd if=/dev/zero of=/dev/xvda ibs=3000 obs=3000', vfs, clock(T0, T0 + 2n * SEC));
    expect(b.stderr).toBe(
      "dd: writing to `/dev/xvda': No space left on device\n" +
        '2797+0 records in\n' +
        '2796+1 records out\n' +
        '8388608 bytes (8.4 MB) copied, 2 s, 4.2 MB/s\n',
    );
    expect([a.status, b.status]).toEqual([1, 1]);
  });

  it('bs=4096 count=10', async () => {
    const src = pattern(MiB);
    const vfs = new MemoryVfs().addFile('/root/img', src).addBlockDevice('/dev/xvda', 8 * MiB);
    const r = await runDd('dd if=/root/img of=/dev/xvda bs=4096 count=10', vfs);
    expect(r).toEqual({
      status: 0,
      stdout: '',
      stderr: '10+0 records in\n10+0 records out\n40960 bytes (41 kB) copied, 0.25 s, 164 kB/s\n',
    });
    expectBytes(vfs.contents('/dev/xvda').subarray(0, 40960), src.subarray(0, 40960));
    expect(vfs.contents('/dev/xvda')[40960]).toBe(0);
  });

  it('counts partial records (+1) and truncates an existing output file', async () => {
    const src = pattern(1000);
    const vfs = new MemoryVfs().addFile('/tmp/src', src).addFile('/tmp/out', pattern(4096, 3));
    const r = await runDd('dd if=/tmp/src of=/tmp/out bs=512', vfs);
    expect(r).toEqual({
      status: 0,
      stdout: '',
      stderr: '1+1 records in\n1+1 records out\n1000 bytes (1.0 kB) copied, 0.25 s, 4.0 kB/s\n',
    });
    expectBytes(vfs.contents('/tmp/out'), src);
  });

  it('aggregates small reads into obs-sized writes without bs=', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/src', pattern(1000));
    const r = await runDd('dd if=/tmp/src of=/tmp/out ibs=100 obs=1000 status=noxfer', vfs);
    expect(r.stderr).toBe('10+0 records in\n1+0 records out\n');
    expectBytes(vfs.contents('/tmp/out'), pattern(1000));
  });

  it('writes 1 byte with the singular form and reports an unmeasurable rate as Infinity', async () => {
    const vfs = new MemoryVfs();
    const r = await runDd('dd if=/dev/zero of=/dev/null bs=1 count=1', vfs, clock(T0));
    expect(r.stderr).toBe('1+0 records in\n1+0 records out\n1 byte (1 B) copied, 0 s, Infinity B/s\n');
  });

  it('skip= and seek= move input and output by whole blocks', async () => {
    const dev = pattern(MiB);
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB);
    // Fill the device, then copy 3 blocks from block 2 into a file.
    vfs.addFile('/tmp/img', dev);
    expect((await runDd('dd if=/tmp/img of=/dev/xvda bs=64K status=none', vfs)).status).toBe(0);
    const r = await runDd('dd if=/dev/xvda of=/tmp/x bs=512 skip=2 count=3', vfs);
    expect(r.stderr).toBe('3+0 records in\n3+0 records out\n1536 bytes (1.5 kB) copied, 0.25 s, 6.1 kB/s\n');
    expectBytes(vfs.contents('/tmp/x'), dev.subarray(1024, 2560));

    vfs.addFile('/tmp/small', pattern(700, 9));
    const s = await runDd('dd if=/tmp/small of=/dev/xvda bs=512 seek=4 status=noxfer', vfs);
    expect(s.stderr).toBe('1+1 records in\n1+1 records out\n');
    const after = vfs.contents('/dev/xvda');
    expectBytes(after.subarray(2048, 2748), pattern(700, 9));
    expectBytes(after.subarray(0, 2048), dev.subarray(0, 2048));
    expectBytes(after.subarray(2748), dev.subarray(2748));
  });

  it('seek= on a regular file truncates to the seek point unless conv=notrunc', async () => {
    const old = new Uint8Array(4096).fill(0xaa);
    const add = new Uint8Array(1000).fill(0x55);
    const vfs = new MemoryVfs().addFile('/tmp/add', add).addFile('/tmp/t', old).addFile('/tmp/n', old);

    await runDd('dd if=/tmp/add of=/tmp/t bs=512 seek=1 status=none', vfs);
    const t = vfs.contents('/tmp/t');
    expect(t.length).toBe(1512);
    expectBytes(t.subarray(0, 512), old.subarray(0, 512));
    expectBytes(t.subarray(512), add);

    await runDd('dd if=/tmp/add of=/tmp/n bs=512 seek=1 conv=notrunc status=none', vfs);
    const n = vfs.contents('/tmp/n');
    expect(n.length).toBe(4096);
    expectBytes(n.subarray(512, 1512), add);
    expectBytes(n.subarray(1512), old.subarray(1512));

    // Without seek=, notrunc keeps the tail as well.
    vfs.addFile('/tmp/k', old);
    await runDd('dd if=/tmp/add of=/tmp/k conv=notrunc status=none', vfs);
    expect(vfs.contents('/tmp/k').length).toBe(4096);
  });

  it('never truncates a block device', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB).addFile('/tmp/one', 'x');
    const r = await runDd('dd if=/tmp/one of=/dev/xvda status=noxfer', vfs);
    expect(r.stderr).toBe('0+1 records in\n0+1 records out\n');
    expect(vfs.contents('/dev/xvda').length).toBe(MiB);
  });

  it('refuses to skip or seek past the end of a block device', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB);
    const stats = '0+0 records in\n0+0 records out\n0 bytes (0 B) copied, 0.25 s, 0 B/s\n';
    expect(await runDd('dd if=/dev/xvda of=/dev/null skip=2049', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: `dd: \`/dev/xvda': cannot skip: Invalid argument\n${stats}`,
    });
    expect(await runDd('dd if=/dev/zero of=/dev/xvda seek=2049', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: `dd: \`/dev/xvda': cannot seek: Invalid argument\n${stats}`,
    });
    // Exactly at the end is fine: reading gives EOF, writing gives ENOSPC.
    expect((await runDd('dd if=/dev/xvda of=/dev/null skip=2048', vfs)).stderr).toBe(stats);
  });

  it('warns when skip= goes past the end of a regular file', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/src', pattern(1000));
    const r = await runDd('dd if=/tmp/src of=/dev/null skip=3', vfs);
    expect(r).toEqual({
      status: 0,
      stdout: '',
      stderr:
        "dd: `/tmp/src': cannot skip to specified offset\n" +
        '0+0 records in\n0+0 records out\n0 bytes (0 B) copied, 0.25 s, 0 B/s\n',
    });
  });

  it('status=none prints nothing but errors; status=noxfer drops the bytes line', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 4096);
    expect(await runDd('dd if=/dev/zero of=/dev/xvda count=2 status=none', vfs)).toEqual({
      status: 0,
      stdout: '',
      stderr: '',
    });
    expect((await runDd('dd if=/dev/zero of=/dev/xvda count=2 status=noxfer', vfs)).stderr).toBe(
      '2+0 records in\n2+0 records out\n',
    );
    expect(await runDd('dd if=/dev/zero of=/dev/xvda status=none', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: "dd: writing to `/dev/xvda': No space left on device\n",
    });
  });

  it('reports open errors without statistics', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/x', 'data');
    expect(await runDd('dd if=/nonexistent of=/dev/null', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: "dd: opening `/nonexistent': No such file or directory\n",
    });
    expect((await runDd('dd if=/dev/zero of=/nodir/x count=1', vfs)).stderr).toBe(
      "dd: opening `/nodir/x': No such file or directory\n",
    );
    expect((await runDd('dd if=/dev/zero of=/tmp/new count=1 conv=nocreat', vfs)).stderr).toBe(
      "dd: opening `/tmp/new': No such file or directory\n",
    );
    expect((await runDd('dd if=/dev/zero of=/tmp/x count=1 conv=excl', vfs)).stderr).toBe(
      "dd: opening `/tmp/x': File exists\n",
    );
    expect((await runDd('dd if=/dev/zero of=/tmp count=1', vfs)).stderr).toBe(
      "dd: opening `/tmp': Is a directory\n",
    );
    expect((await runDd('dd if=/dev/zero of=/dev/null iflag=direct', vfs)).stderr).toBe(
      "dd: opening `/dev/zero': Invalid argument\n",
    );
  });

  it('stops at a read error and prints the statistics', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 4096, { read: failReadsCovering(2048) });
    expect(await runDd('dd if=/dev/xvda of=/tmp/out bs=512', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "dd: reading `/dev/xvda': Input/output error\n" +
        '4+0 records in\n4+0 records out\n2048 bytes (2.0 kB) copied, 0.25 s, 8.2 kB/s\n',
    });
    // Without bs= the partially filled output block is still written out.
    const r = await runDd('dd if=/dev/xvda of=/tmp/out2 ibs=512 obs=1536 status=noxfer', vfs);
    expect(r.stderr).toBe("dd: reading `/dev/xvda': Input/output error\n4+0 records in\n1+1 records out\n");
    expect(vfs.contents('/tmp/out2').length).toBe(2048);
    const dir = await runDd('dd if=/tmp of=/dev/null status=noxfer', vfs);
    expect(dir.stderr).toBe("dd: reading `/tmp': Is a directory\n0+0 records in\n0+0 records out\n");
  });

  it('conv=noerror,sync replaces a bad block with zeros and carries on', async () => {
    const dev = pattern(4096);
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 4096, { read: failReadsCovering(2048) });
    vfs.addFile('/tmp/img', dev);
    vfs.setFaults('/dev/xvda', {});
    await runDd('dd if=/tmp/img of=/dev/xvda status=none', vfs);
    vfs.setFaults('/dev/xvda', { read: failReadsCovering(2048) });
    const r = await runDd(
      'dd if=/dev/xvda of=/tmp/out bs=512 conv=noerror,sync',
      vfs,
      clock(T0, T0 + SEC / 4n, T0 + SEC / 2n),
    );
    // The error prints the statistics at once; the zero-filled block is a partial record read
    // but a full one written.
    expect(r).toEqual({
      status: 0,
      stdout: '',
      stderr:
        "dd: reading `/dev/xvda': Input/output error\n" +
        '4+0 records in\n4+0 records out\n2048 bytes (2.0 kB) copied, 0.25 s, 8.2 kB/s\n' +
        '7+1 records in\n8+0 records out\n4096 bytes (4.1 kB) copied, 0.5 s, 8.2 kB/s\n',
    });
    const out = vfs.contents('/tmp/out');
    expectBytes(out.subarray(0, 2048), dev.subarray(0, 2048));
    expectBytes(out.subarray(2048, 2560), new Uint8Array(512));
    expectBytes(out.subarray(2560), dev.subarray(2560));
  });

  it('conv=noerror without sync skips the bad block', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 4096, { read: failReadsCovering(2048) });
    const r = await runDd('dd if=/dev/xvda of=/tmp/out bs=512 conv=noerror status=noxfer', vfs);
    expect(r.stderr).toBe(
      "dd: reading `/dev/xvda': Input/output error\n4+0 records in\n4+0 records out\n" +
        '7+0 records in\n7+0 records out\n',
    );
    expect(vfs.contents('/tmp/out').length).toBe(3584);
  });

  it('reports fsync, fdatasync and close failures like dd', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB, { fsync: () => 'EIO' });
    expect((await runDd('dd if=/dev/zero of=/dev/xvda count=1 conv=fsync', vfs)).stderr).toBe(
      "dd: fsync failed for `/dev/xvda': Input/output error\n" +
        '1+0 records in\n1+0 records out\n512 bytes (512 B) copied, 0.25 s, 2.0 kB/s\n',
    );
    // fdatasync's failure is reported, then dd falls back to fsync, which fails too.
    const f = await runDd('dd if=/dev/zero of=/dev/xvda count=1 conv=fdatasync status=noxfer', vfs);
    expect(f).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "dd: fdatasync failed for `/dev/xvda': Input/output error\n" +
        "dd: fsync failed for `/dev/xvda': Input/output error\n" +
        '1+0 records in\n1+0 records out\n',
    });
    vfs.setFaults('/dev/xvda', { close: () => 'EIO' });
    // cleanup() dies on a failed close before the statistics are printed.
    expect(await runDd('dd if=/dev/zero of=/dev/xvda count=1', vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: "dd: closing output file `/dev/xvda': Input/output error\n",
    });
  });

  it('conv=fsync flushes the output once', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB);
    const r = await runDd('dd if=/dev/zero of=/dev/xvda bs=4K count=4 conv=fsync status=none', vfs);
    expect(r.status).toBe(0);
    expect(vfs.stats('/dev/xvda').fsyncs).toBe(1);
  });

  it('writes to stdout (latin1) when of= is missing; refuses a missing if=', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/t', 'h\xe9llo\n');
    const r = await runDd('dd if=/tmp/t', vfs);
    expect(r).toEqual({
      status: 0,
      stdout: 'h\xe9llo\n',
      stderr: '0+1 records in\n0+1 records out\n6 bytes (6 B) copied, 0.25 s, 24 B/s\n',
    });
    const n = await runDd('dd of=/dev/null', vfs);
    expect(n.status).toBe(1);
    expect(n.stderr).toBe(
      'dd: reading from standard input needs a pipe in this guest (… | dd); use if=FILE\n',
    );
  });

  it('stops on SIGINT with the statistics and status 130', async () => {
    const ac = new AbortController();
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB, {
      // Ctrl-C arrives while the third block is being written.
      write: (off) => {
        if (off === 1024) ac.abort();
        return undefined;
      },
    });
    const r = await runDd('dd if=/dev/zero of=/dev/xvda', vfs, quarterSecond(), ac.signal);
    expect(r).toEqual({
      status: 130,
      stdout: '',
      stderr: '3+0 records in\n3+0 records out\n1536 bytes (1.5 kB) copied, 0.25 s, 6.1 kB/s\n',
    });
    expect(vfs.stats('/dev/xvda').closes).toBe(1);
  });

  it('status=progress rewrites one line with \\r, once per second', async () => {
    let t = T0;
    const now = (): bigint => {
      const v = t;
      t += 300_000_000n;
      return v;
    };
    const r = await runDd('dd if=/dev/zero of=/dev/null count=5 status=progress', new MemoryVfs(), now);
    // Calls: start 0, loop tops at 0.3 0.6 0.9 1.2 (prints 3 blocks in 1.2 s) 1.5 1.8, final 2.1 s.
    expect(r.stderr).toBe(
      '\r1536 bytes (1.5 kB) copied, 1 s, 1.3 kB/s' +
        '\n5+0 records in\n5+0 records out\n2560 bytes (2.6 kB) copied, 2.1 s, 1.2 kB/s\n',
    );
  });

  it('iflag=count_bytes and iflag=skip_bytes count bytes, not blocks', async () => {
    const src = pattern(3000);
    const vfs = new MemoryVfs().addFile('/tmp/src', src);
    const r = await runDd(
      'dd if=/tmp/src of=/tmp/o bs=512 count=1000 skip=100 iflag=count_bytes,skip_bytes',
      vfs,
    );
    expect(r.stderr).toBe('1+1 records in\n1+1 records out\n1000 bytes (1.0 kB) copied, 0.25 s, 4.0 kB/s\n');
    expectBytes(vfs.contents('/tmp/o'), src.subarray(100, 1100));
  });

  it('oflag=direct: aligned writes pass, a short final block drops O_DIRECT and is fsynced', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', MiB).addFile('/tmp/src', pattern(1000));
    const r = await runDd('dd if=/tmp/src of=/dev/xvda bs=512 oflag=direct status=noxfer', vfs);
    expect(r).toEqual({ status: 0, stdout: '', stderr: '1+1 records in\n1+1 records out\n' });
    expectBytes(vfs.contents('/dev/xvda').subarray(0, 1000), pattern(1000));
    expect(vfs.stats('/dev/xvda').fsyncs).toBe(1);
    // An unaligned block size fails with EINVAL from the first write.
    const bad = await runDd('dd if=/tmp/src of=/dev/xvda bs=1000 oflag=direct status=noxfer', vfs);
    expect(bad.stderr).toBe("dd: writing `/dev/xvda': Invalid argument\n1+0 records in\n0+0 records out\n");
  });

  it('conv=ucase and conv=swab', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/t', 'abcdE');
    await runDd('dd if=/tmp/t of=/tmp/u conv=ucase status=none', vfs);
    expect(Buffer.from(vfs.contents('/tmp/u')).toString('latin1')).toBe('ABCDE');
    await runDd('dd if=/tmp/t of=/tmp/s conv=swab status=none', vfs);
    expect(Buffer.from(vfs.contents('/tmp/s')).toString('latin1')).toBe('badcE');
  });
});
