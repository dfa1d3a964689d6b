/**
 * What a guest shows of its disks: the sysfs attributes in Linux's formats (and the writable ones
 * refusing what Linux refuses), /dev and /sys listings, the read-only policy blockdev sets (writes
 * then fail with EPERM), lsblk's columns and layout, and "no such device" for disks it does not have.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryKernelLog } from '@pvblk/shared';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Blkfront } from '../src/blkfront/device.ts';
import { BlockDeviceCache } from '../src/block/page-cache.ts';
import { GuestBlockQueue } from '../src/block/queue.ts';
import type { BlockRequest, BlockResult } from '../src/block/types.ts';
import { GuestFs, xenDevNumbers } from '../src/guest/guest-vfs.ts';
import { humanSize } from '../src/guest/lsblk.ts';
import { guestCommands, type GuestDisk } from '../src/guest/toolbox.ts';
import { runCommandLine } from '../src/guest/shell.ts';
import { FakeDriver } from './block/fake-driver.ts';
import { runCaptured } from './run-captured.ts';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'pvblk-devices-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

function guest(opts: { flush?: boolean; discard?: boolean } = {}) {
  const driver = new FakeDriver({
    flush: opts.flush ?? true,
    limits: opts.discard
      ? { discard: { maxSectors: 8192, granularity: 512, alignment: 0, secure: false } }
      : {},
  });
  const klog = new MemoryKernelLog();
  const queue = new GuestBlockQueue(driver, klog);
  const cache = new BlockDeviceCache(queue, klog);
  const vfs = new GuestFs(root);
  vfs.registerBlockDevice('xvda', queue, cache, { ...xenDevNumbers(51712), removable: false });
  // the tools here never reach blkfront itself
  const disks: GuestDisk[] = [{ name: 'xvda', devid: 51712, front: {} as Blkfront, queue, cache }];
  const commands = guestCommands({ klog: { messages: () => klog.messages }, disks, vfs });
  const sh = (line: string) => runCaptured(line, vfs, commands);
  return { driver, queue, vfs, sh };
}

describe('sysfs', () => {
  it('lists /dev, /sys/block and a disk directory', async () => {
    const { sh } = guest();
    expect((await sh('ls /dev')).out).toBe('full\nnull\nrandom\nurandom\nxvda\nzero\n');
    expect((await sh('ls /sys /sys/block')).out).toBe('/sys:\nblock\n\n/sys/block:\nxvda\n');
    const top = (await sh('ls -F /sys/block/xvda')).out.split('\n');
    expect(top).toEqual(
      expect.arrayContaining(['dev', 'inflight', 'integrity/', 'queue/', 'removable', 'ro', 'size', 'stat']),
    );
    const queue = (await sh('ls /sys/block/xvda/queue')).out.split('\n');
    expect(queue).toEqual(
      expect.arrayContaining(['nr_requests', 'rotational', 'scheduler', 'write_cache', 'io_timeout']),
    );
    expect((await sh('ls /sys/block/xvdz')).err).toBe(
      'ls: cannot access /sys/block/xvdz: No such file or directory\n',
    );
  });

  it("shows the attributes in Linux's formats", async () => {
    const { sh } = guest();
    const cat = async (a: string) => (await sh(`cat /sys/block/xvda/${a}`)).out;
    expect(await cat('dev')).toBe('202:0\n');
    expect(await cat('removable')).toBe('0\n');
    expect(await cat('ro')).toBe('0\n');
    expect(await cat('inflight')).toBe('       0        0\n');
    expect(await cat('queue/nr_requests')).toBe('128\n');
    expect(await cat('queue/scheduler')).toBe('noop deadline [cfq]\n');
    expect(await cat('queue/rotational')).toBe('0\n');
    expect(await cat('queue/write_cache')).toBe('write back\n');
    expect(await cat('queue/io_timeout')).toBe('30000\n');
    expect((await guest({ flush: false }).sh('cat /sys/block/xvda/queue/write_cache')).out).toBe(
      'write through\n',
    );
  });

  it('writable attributes take what Linux takes and refuse the rest with EINVAL', async () => {
    const { sh } = guest();
    const set = async (a: string, v: string) => (await sh(`echo ${v} > /sys/block/xvda/${a}`)).err;
    const cat = async (a: string) => (await sh(`cat /sys/block/xvda/${a}`)).out;
    expect(await set('queue/nr_requests', '2')).toBe('');
    expect(await cat('queue/nr_requests')).toBe('4\n'); // BLKDEV_MIN_RQ
    expect(await set('queue/scheduler', 'deadline')).toBe('');
    expect(await cat('queue/scheduler')).toBe('noop [deadline] cfq\n');
    expect(await set('queue/scheduler', 'bfq')).toBe('sh: write error: Invalid argument\n');
    expect(await set('queue/write_cache', "'write through'")).toBe('');
    expect(await cat('queue/write_cache')).toBe('write through\n');
    expect(await set('queue/io_timeout', '0')).toBe('sh: write error: Invalid argument\n');
    expect(await set('queue/rotational', '1')).toBe('');
    expect(await cat('queue/rotational')).toBe('1\n');
    expect(await set('dev', '1:1')).toBe('sh: /sys/block/xvda/dev: Permission denied\n');
  });

  it('inflight counts reads and writes in flight separately', async () => {
    const { driver, sh } = guest();
    const held: Array<() => void> = [];
    const submit = driver.submit.bind(driver);
    driver.submit = (req: BlockRequest): Promise<BlockResult> =>
      new Promise((resolve) => held.push(() => void submit(req).then(resolve)));
    const io = sh('dd if=/dev/xvda of=/dev/null bs=4096 count=1 iflag=direct status=none');
    while (held.length === 0) await new Promise((r) => setImmediate(r));
    // the attribute is read while the read is held in the driver
    driver.submit = submit;
    expect((await sh('cat /sys/block/xvda/inflight')).out).toBe('       1        0\n');
    held[0]();
    expect((await io).status).toBe(0);
    expect((await sh('cat /sys/block/xvda/inflight')).out).toBe('       0        0\n');
  });
});

describe('blockdev', () => {
  it('--setro makes writes fail with EPERM, as Linux; --setrw lifts it; ro and lsblk follow', async () => {
    const { sh } = guest();
    expect(await sh('blockdev --setro /dev/xvda')).toEqual({ status: 0, out: '', err: '' });
    expect((await sh('blockdev --getro /dev/xvda')).out).toBe('1\n');
    expect((await sh('cat /sys/block/xvda/ro')).out).toBe('1\n');
    const w = await sh('dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct');
    expect(w.status).toBe(1);
    expect(w.err.split('\n')[0]).toBe("dd: writing `/dev/xvda': Operation not permitted");
    expect((await sh('lsblk -n -o NAME,RO')).out).toBe('xvda  1\n');
    expect((await sh('blockdev --setrw /dev/xvda; blockdev --getro /dev/xvda')).out).toBe('0\n');
    expect((await sh('dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct status=none')).status).toBe(
      0,
    );
  });

  it('answers several commands in order; --rereadpt finds no partition table; errors as util-linux', async () => {
    const { sh } = guest();
    expect(await sh('blockdev --getss --getsize64 --rereadpt --getsz /dev/xvda')).toEqual({
      status: 0,
      out: '512\n8388608\n16384\n',
      err: '',
    });
    expect(await sh('blockdev --getro /dev/xvdz')).toEqual({
      status: 1,
      out: '',
      err: 'blockdev: cannot open /dev/xvdz: No such file or directory\n',
    });
    expect((await sh('blockdev --getsize64 /dev/zero')).err).toBe(
      'BLKGETSIZE64: Inappropriate ioctl for device\n',
    );
    expect((await sh('blockdev --frob /dev/xvda')).err.split('\n')[0]).toBe(
      'blockdev: Unknown command: --frob',
    );
  });
});

describe('lsblk', () => {
  it("prints util-linux's default columns and layout", async () => {
    const { sh } = guest();
    expect((await sh('lsblk')).out).toBe(
      'NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINT\nxvda 202:0    0   8M  0 disk \n',
    );
    expect((await sh('lsblk -o NAME,MAJ:MIN,RM,SIZE,RO,TYPE,MOUNTPOINT')).out).toBe((await sh('lsblk')).out);
  });

  it('-o with other columns, -b, -n, -r, -P, -t; unknown columns and devices', async () => {
    const { sh } = guest();
    expect((await sh('lsblk -o name,rq-size,sched,rota,phy-sec,log-sec')).out).toBe(
      'NAME RQ-SIZE SCHED ROTA PHY-SEC LOG-SEC\nxvda     128 cfq      0     512     512\n',
    );
    expect((await sh('lsblk -b -n -o NAME,SIZE /dev/xvda')).out).toBe('xvda 8388608\n');
    expect((await sh('lsblk -r')).out).toBe(
      'NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINT\nxvda 202:0 0 8M 0 disk \n',
    );
    expect((await sh('lsblk -P -o NAME,MAJ:MIN')).out).toBe('NAME="xvda" MAJ:MIN="202:0"\n');
    expect((await sh('lsblk -t')).out.split('\n')[0]).toBe(
      'NAME ALIGNMENT MIN-IO OPT-IO PHY-SEC LOG-SEC ROTA SCHED RQ-SIZE',
    );
    expect(await sh('lsblk -o NAME,FOO')).toEqual({
      status: 1,
      out: '',
      err: 'lsblk: unknown column: FOO\n',
    });
    expect((await sh('lsblk /dev/xvdz')).err).toBe('lsblk: /dev/xvdz: not a block device\n');
    // a name every object inherits is an operand like any other, not an option
    expect((await sh('lsblk constructor')).err).toBe('lsblk: constructor: not a block device\n');
  });

  it('sizes as size_to_human_string() prints them', () => {
    expect(humanSize(8 << 20)).toBe('8M');
    expect(humanSize(500107862016)).toBe('465.8G');
    expect(humanSize(512)).toBe('512B');
    expect(humanSize(1.5 * 2 ** 30)).toBe('1.5G');
    expect(humanSize(2 ** 30 - 1)).toBe('1024M');
  });
});

describe('/dev/zero and /dev/urandom', () => {
  it('let the rest of the process run while a reader takes them without end: Ctrl-C stops it', async () => {
    const { vfs } = guest();
    const commands = guestCommands({ klog: { messages: () => [] }, disks: [], vfs });
    for (const line of [
      'cat /dev/zero > /dev/null',
      'dd if=/dev/urandom of=/dev/null bs=64k status=none',
      'md5sum /dev/zero',
    ]) {
      const ac = new AbortController();
      let err = '';
      const run = runCommandLine(
        line,
        { stdout: () => {}, stderr: (t) => (err += t), signal: ac.signal },
        { vfs, now: () => 0n },
        commands,
      );
      // their reads resolved at once and the loops never let an immediate (or a socket, or a timer) run
      setImmediate(() => ac.abort());
      expect(await run, line).toBe(130);
      expect(err, line).toBe('');
    }
  });
});

describe('blkdiscard', () => {
  it("reads -o and -l as util-linux's parse_size does, and refuses what it refuses, naming the value", async () => {
    const { sh, driver } = guest({ discard: true });
    expect(await sh('blkdiscard -o 0x1000 -l 8KiB /dev/xvda')).toEqual({ status: 0, out: '', err: '' });
    expect(await sh('blkdiscard -o 010000 -l 1k /dev/xvda')).toEqual({ status: 0, out: '', err: '' });
    expect(driver.ranges('discard')).toEqual([
      [8, 16],
      [8, 2],
    ]);
    for (const [args, err] of [
      ['-o 512 -l -512', "blkdiscard: failed to parse length: '-512'"],
      ['-o -512 -l 1024', "blkdiscard: failed to parse offset: '-512'"],
      ["-o '' -l 512", "blkdiscard: failed to parse offset: ''"],
      ['-o -0', "blkdiscard: failed to parse offset: '-0'"],
      ['-l 1.5K', "blkdiscard: failed to parse length: '1.5K'"],
      ['-l 4Q', "blkdiscard: failed to parse length: '4Q'"],
    ])
      expect(await sh(`blkdiscard ${args} /dev/xvda`), args).toEqual({ status: 1, out: '', err: `${err}\n` });
    expect((await sh('blkdiscard /dev/xvda -o')).err).toBe(
      "blkdiscard: option requires an argument -- 'o'\nTry 'blkdiscard --help' for more information.\n",
    );
    // nothing reached the driver for any of them
    expect(driver.ranges('discard')).toHaveLength(2);
  });
});

describe('blkdiscard options, as getopt_long reads them', () => {
  it('takes --offset=N, clustered and attached short options and long prefixes, never as the device', async () => {
    const { sh, driver } = guest({ discard: true });
    // --offset=4M was taken for the device name, and the next operand discarded from sector 0
    expect(await sh('blkdiscard --offset=4M /dev/xvda')).toEqual({ status: 0, out: '', err: '' });
    expect(await sh('blkdiscard /dev/xvda --off=4096 -l8k')).toEqual({ status: 0, out: '', err: '' });
    expect(await sh('blkdiscard -vl 1k /dev/xvda')).toEqual({
      status: 0,
      out: '/dev/xvda: Discarded 1024 bytes from the offset 0\n',
      err: '',
    });
    // --step: the range in pieces of that size, the last one cut at the range's end
    expect(await sh('blkdiscard -p 4k -o 1M -l 10k /dev/xvda')).toEqual({ status: 0, out: '', err: '' });
    expect(driver.ranges('discard')).toEqual([
      [8192, 8192],
      [8, 16],
      [0, 2],
      [2048, 8],
      [2056, 8],
      [2064, 4],
    ]);
  });

  it('cuts a range at the end of the device, and refuses what util-linux refuses with its messages', async () => {
    const { sh, driver } = guest({ discard: true });
    // the last 4 KiB of the 8 MiB disk, asked for with a length of 1 GiB
    expect(await sh(`blkdiscard -o ${8 * 1048576 - 4096} -l 1G /dev/xvda`)).toEqual({
      status: 0,
      out: '',
      err: '',
    });
    expect(driver.ranges('discard')).toEqual([[16376, 8]]);
    const tryHelp = "Try 'blkdiscard --help' for more information.\n";
    for (const [args, err] of [
      ['-x /dev/xvda', `blkdiscard: invalid option -- 'x'\n${tryHelp}`],
      ['--bogus /dev/xvda', `blkdiscard: unrecognized option '--bogus'\n${tryHelp}`],
      [
        '--s /dev/xvda',
        `blkdiscard: option '--s' is ambiguous; possibilities: '--step' '--secure'\n${tryHelp}`,
      ],
      ['--secure=1 /dev/xvda', `blkdiscard: option '--secure' doesn't allow an argument\n${tryHelp}`],
      ['/dev/xvda --length', `blkdiscard: option '--length' requires an argument\n${tryHelp}`],
      ['/dev/xvda /dev/xvda', `blkdiscard: unexpected number of arguments\n${tryHelp}`],
      ['-z /dev/xvda', 'blkdiscard: --zeroout (BLKZEROOUT) is not supported by this guest\n'],
      ['-o 100 /dev/xvda', 'blkdiscard: /dev/xvda: offset 100 is not aligned to sector size 512\n'],
      ['-l 100 /dev/xvda', 'blkdiscard: /dev/xvda: length 100 is not aligned to sector size 512\n'],
      ['-o 9M /dev/xvda', 'blkdiscard: /dev/xvda: offset is greater than device size\n'],
      ['-v', 'blkdiscard: no device specified\n'],
    ])
      expect(await sh(`blkdiscard ${args}`), args).toEqual({ status: 1, out: '', err });
    expect(driver.ranges('discard')).toHaveLength(1);
    expect((await sh('blkdiscard --help')).out).toContain(
      ' -p, --step <num>    size of the discard iterations',
    );
  });
});

describe('tools on a disk the guest does not have', () => {
  it('say "No such device"; a missing operand is a usage error', async () => {
    const { sh } = guest();
    expect(await sh('integrity-fault /dev/xvdz clear')).toEqual({
      status: 1,
      out: '',
      err: 'integrity-fault: /dev/xvdz: No such device\n',
    });
    expect((await sh('blkfront-fault /dev/xvdz nr_segments=12')).err).toBe(
      'blkfront-fault: /dev/xvdz: No such device\n',
    );
    expect((await sh('blkstat /dev/xvdz')).err).toBe('blkstat: /dev/xvdz: No such device\n');
    expect((await sh('blkdiscard /dev/xvdz')).err).toBe(
      'blkdiscard: cannot open /dev/xvdz: No such file or directory\n',
    );
    expect((await sh('integrity-fault /dev/xvda')).status).toBe(2);
  });
});
