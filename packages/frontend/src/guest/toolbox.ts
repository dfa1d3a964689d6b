/**
 * The commands a guest offers: the coreutils-like tools (dd, md5sum, cmp, …) plus the ones that need
 * the running guest — dmesg reads its kernel log, sync writes back its page caches, blockdev and lsblk
 * describe its disks, demo is the default workload — and `sh -c` for command lines.
 */
import { formatKmsg, ownEntry, type KernelMessage } from '@pvblk/shared';
import type { Blkfront } from '../blkfront/device.ts';
import type { BlockDeviceCache } from '../block/page-cache.ts';
import type { GuestBlockQueue } from '../block/queue.ts';
import { COMMANDS } from './commands.ts';
import { runCommandLine, quoteArgv } from './shell.ts';
import { lsblk } from './lsblk.ts';
import {
  STRERROR,
  type BlockIoctl,
  type CommandIo,
  type GuestCommand,
  type GuestVfs,
  type IoctlResult,
} from './vfs.ts';
import { chaosIoCommand } from './chaos-io.ts';
import { getoptLong, type LongOption } from './getopt.ts';

export interface GuestDisk {
  name: string;
  /** The vbd's virtual-device number (51712 for xvda). */
  devid: number;
  front: Blkfront;
  queue: GuestBlockQueue;
  cache: BlockDeviceCache;
}

export interface GuestRuntime {
  klog: { messages(): readonly KernelMessage[] };
  disks: GuestDisk[];
  vfs: GuestVfs;
}

/** blkdiscard's long options (getopt_long's table). */
const BLKDISCARD_OPTIONS: LongOption[] = [
  { name: 'help', arg: false, val: 'h' },
  { name: 'force', arg: false, val: 'f' },
  { name: 'quiet', arg: false, val: 'q' },
  { name: 'zeroout', arg: false, val: 'z' },
  { name: 'offset', arg: true, val: 'o' },
  { name: 'length', arg: true, val: 'l' },
  { name: 'step', arg: true, val: 'p' },
  { name: 'secure', arg: false, val: 's' },
  { name: 'verbose', arg: false, val: 'v' },
];

const LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

/** The default workload: write random data to the disk, read it back, compare. */
export const DEMO_SCRIPT = [
  'dd if=/dev/urandom of=/tmp/demo.in bs=4096 count=256',
  'dd if=/tmp/demo.in of=/dev/xvda bs=4096 oflag=direct conv=fsync',
  'dd if=/dev/xvda of=/tmp/demo.out bs=4096 count=256 iflag=direct',
  'cmp /tmp/demo.in /tmp/demo.out',
  'md5sum /tmp/demo.in /tmp/demo.out',
];

function findDisk(rt: GuestRuntime, path: string): GuestDisk | undefined {
  return rt.disks.find((d) => `/dev/${d.name}` === path || d.name === path);
}

/** What a tool says of a device this guest does not have. */
function noSuchDevice(io: CommandIo, tool: string, dev: string): number {
  io.stderr(`${tool}: ${dev}: ${STRERROR.ENODEV}\n`);
  return 1;
}

/** blockdev's commands: the ioctl each issues, its argument, and whether it prints the result. */
const BLOCKDEV_COMMANDS: Record<string, { ioctl: BlockIoctl; arg?: number; prints: boolean }> = {
  '--setro': { ioctl: 'BLKROSET', arg: 1, prints: false },
  '--setrw': { ioctl: 'BLKROSET', arg: 0, prints: false },
  '--getro': { ioctl: 'BLKROGET', prints: true },
  '--getsz': { ioctl: 'BLKGETSIZE', prints: true },
  '--getsize': { ioctl: 'BLKGETSIZE', prints: true },
  '--getsize64': { ioctl: 'BLKGETSIZE64', prints: true },
  '--getss': { ioctl: 'BLKSSZGET', prints: true },
  '--getpbsz': { ioctl: 'BLKPBSZGET', prints: true },
  '--getbsz': { ioctl: 'BLKBSZGET', prints: true },
  '--flushbufs': { ioctl: 'BLKFLSBUF', prints: false },
  '--rereadpt': { ioctl: 'BLKRRPART', prints: false },
};
const BLOCKDEV_USAGE = `usage: blockdev [-q] ${Object.keys(BLOCKDEV_COMMANDS).join('|')} <device>...`;

export function guestCommands(rt: GuestRuntime): Record<string, GuestCommand> {
  const commands: Record<string, GuestCommand> = { ...COMMANDS };

  commands.dmesg = async (argv, io) => {
    // dmesg [-l level[,level…]] : the kernel ring buffer with its timestamps
    let levels: Set<number> | null = null;
    for (let i = 1; i < argv.length; i++) {
      const a = argv[i];
      const v = a === '-l' || a === '--level' ? argv[++i] : a.startsWith('--level=') ? a.slice(8) : null;
      if (v === null || v === undefined) {
        io.stderr(`dmesg: unrecognized option '${a}'\n`);
        return 1;
      }
      levels = new Set<number>();
      for (const name of v.split(',')) {
        const n = LEVEL_NAMES.indexOf(name);
        if (n < 0) {
          io.stderr(`dmesg: unknown level '${name}'\n`);
          return 1;
        }
        levels.add(n);
      }
    }
    for (const m of rt.klog.messages())
      if (!levels || levels.has(m.level)) io.stdout(formatKmsg(m.ts, m.text) + '\n');
    return 0;
  };

  commands.sync = async (_argv, io) => {
    let status = 0;
    for (const d of rt.disks) {
      const r = await d.cache.fsync();
      if (!r.ok) {
        io.stderr(`sync: error syncing '/dev/${d.name}': ${STRERROR[r.errno]}\n`);
        status = 1;
      }
    }
    return status;
  };

  commands.blockdev = async (argv, io, ctx) => {
    // blockdev [-q] --cmd... device...: each command, in order, on each device (util-linux 2.2x)
    const cmds: string[] = [];
    let i = 1;
    for (; i < argv.length && argv[i].startsWith('-'); i++)
      if (argv[i] !== '-q' && argv[i] !== '-v') cmds.push(argv[i]);
    const devices = argv.slice(i);
    const unknown = cmds.find((c) => ownEntry(BLOCKDEV_COMMANDS, c) === undefined);
    if (unknown !== undefined || cmds.length === 0 || devices.length === 0) {
      if (unknown !== undefined) io.stderr(`blockdev: Unknown command: ${unknown}\n`);
      io.stderr(`${BLOCKDEV_USAGE}\n`);
      return 1;
    }
    let status = 0;
    for (const dev of devices) {
      const f = await ctx.vfs.open(dev, { read: true, write: false });
      if ('errno' in f) {
        io.stderr(`blockdev: cannot open ${dev}: ${STRERROR[f.errno]}\n`);
        status = 1;
        continue;
      }
      try {
        for (const c of cmds) {
          const { ioctl, arg, prints } = BLOCKDEV_COMMANDS[c];
          const r: IoctlResult = f.ioctl ? await f.ioctl(ioctl, arg) : { ok: false, errno: 'ENOTTY' };
          if (!r.ok) {
            io.stderr(`${ioctl}: ${STRERROR[r.errno]}\n`);
            status = 1;
            break;
          }
          if (prints) io.stdout(`${r.value}\n`);
        }
      } finally {
        await f.close();
      }
    }
    return status;
  };

  commands.lsblk = (argv, io, ctx) =>
    lsblk(
      argv,
      io,
      ctx,
      rt.disks.map((d) => d.name),
    );

  commands.blkdiscard = async (argv, io) => {
    // util-linux's blkdiscard: -f and -q have nothing to skip or silence here (no filesystem probe,
    // no warnings); -z (BLKZEROOUT) is refused by name, and there is no version to report
    const usage = (out: (t: string) => void) =>
      out(
        '\nUsage:\n blkdiscard [options] <device>\n\nDiscard the content of sectors on a device.\n\n' +
          'Options:\n' +
          ' -o, --offset <num>  offset in bytes to discard from\n' +
          ' -l, --length <num>  length of bytes to discard from the offset\n' +
          ' -p, --step <num>    size of the discard iterations within the offset\n' +
          ' -f, --force         disable all checking\n' +
          ' -q, --quiet         suppress warning messages\n' +
          ' -s, --secure        perform secure discard\n' +
          ' -v, --verbose       print aligned length and offset\n\n' +
          ' -h, --help     display this help and exit\n\nFor more details see blkdiscard(8).\n',
      );
    const tryHelp = "Try 'blkdiscard --help' for more information.\n";
    const parsed = getoptLong('blkdiscard', argv.slice(1), 'hfqsvzo:l:p:', BLKDISCARD_OPTIONS);
    if (!parsed.ok) {
      io.stderr(`${parsed.message}\n${tryHelp}`);
      return 1;
    }
    let offset = 0;
    let length: number | null = null;
    let step = 0;
    let secure = false;
    let verbose = false;
    for (const { opt, arg } of parsed.options) {
      if (opt === 'h') {
        usage(io.stdout);
        return 0;
      }
      if (opt === 'z') {
        io.stderr('blkdiscard: --zeroout (BLKZEROOUT) is not supported by this guest\n');
        return 1;
      }
      if (opt === 'f' || opt === 'q') continue;
      if (opt === 's') secure = true;
      else if (opt === 'v') verbose = true;
      else {
        // strtosize_or_err(): the run ends at the first value it cannot read, naming it
        const what = opt === 'o' ? 'offset' : opt === 'l' ? 'length' : 'step';
        const v = strtosize(arg!);
        if (v === null) {
          io.stderr(`blkdiscard: failed to parse ${what}: '${arg}'\n`);
          return 1;
        }
        if (opt === 'o') offset = v;
        else if (opt === 'l') length = v;
        else step = v;
      }
    }
    if (parsed.operands.length === 0) {
      io.stderr('blkdiscard: no device specified\n');
      return 1;
    }
    if (parsed.operands.length > 1) {
      io.stderr(`blkdiscard: unexpected number of arguments\n${tryHelp}`);
      return 1;
    }
    const dev = parsed.operands[0];
    const d = findDisk(rt, dev);
    if (!d) {
      io.stderr(
        `blkdiscard: cannot open ${dev}: ${STRERROR[dev.startsWith('/dev/') ? 'ENOENT' : 'ENOTTY']}\n`,
      );
      return 1;
    }
    const size = d.queue.capacity() * 512;
    const secsize = d.queue.limits().logicalBlockSize;
    if (offset % secsize) {
      io.stderr(`blkdiscard: ${dev}: offset ${offset} is not aligned to sector size ${secsize}\n`);
      return 1;
    }
    if (offset > size) {
      io.stderr(`blkdiscard: ${dev}: offset is greater than device size\n`);
      return 1;
    }
    // a range past the end of the device is cut there (an absent length is "to the end")
    const end = length === null || offset + length > size ? size : offset + length;
    let chunk = step > 0 ? step : end - offset;
    if (chunk % secsize) {
      io.stderr(`blkdiscard: ${dev}: length ${chunk} is not aligned to sector size ${secsize}\n`);
      return 1;
    }
    let statsFrom = offset;
    let statsBytes = 0;
    let last = Date.now();
    const printStats = () =>
      io.stdout(`${dev}: Discarded ${statsBytes} bytes from the offset ${statsFrom}\n`);
    for (let at = offset; at < end; at += chunk) {
      if (at + chunk > end) chunk = end - at;
      // a BLKDISCARD (BLKSECDISCARD) a step: the step's cached pages dropped, then the discard
      const r = await d.cache.discard(at, chunk, { secure });
      if (!r.ok) {
        io.stderr(
          `blkdiscard: ${dev}: ${secure ? 'BLKSECDISCARD' : 'BLKDISCARD'} ioctl failed: ${STRERROR[r.errno]}\n`,
        );
        return 1;
      }
      // progress at most once a second, with --step
      if (verbose && step && Date.now() - last >= 1000) {
        printStats();
        statsFrom = at;
        statsBytes = 0;
        last = Date.now();
      }
      statsBytes += chunk;
    }
    if (verbose) printStats();
    return 0;
  };

  commands['blkfront-fault'] = async (argv, io) => {
    // blkfront-fault <device> nr_segments=N | last_sect=N | bogus_req_prod[=ahead]
    const spec = argv[2] ?? '';
    const m = /^(nr_segments|last_sect|bogus_req_prod)(?:=(\d+))?$/.exec(spec);
    if (!argv[1] || !m) {
      io.stderr('usage: blkfront-fault /dev/xvdX nr_segments=N | last_sect=N | bogus_req_prod[=N]\n');
      return 2;
    }
    const d = findDisk(rt, argv[1]);
    if (!d) return noSuchDevice(io, 'blkfront-fault', argv[1]);
    const n = Number(m[2] ?? 100);
    const armed =
      m[1] === 'bogus_req_prod'
        ? d.front.injectFault({ bogusReqProdAhead: n })
        : d.front.injectFault({
            mutateNextRequest: (slot) => {
              if (m[1] === 'nr_segments') slot[1] = n;
              else slot[29] = n; // segment 0's last_sect
            },
          });
    if (!armed) {
      io.stderr(`blkfront-fault: ${argv[1]} is not connected\n`);
      return 1;
    }
    io.stdout(`blkfront-fault: ${d.name}: ${spec} armed for the next request\n`);
    return 0;
  };

  commands['integrity-fault'] = async (argv, io) => {
    // integrity-fault <device> corrupt_after_generate=SECTOR | misdirect=FROM:TO | clear
    const spec = argv[2] ?? '';
    const c = /^corrupt_after_generate=(\d+)$/.exec(spec);
    const m = /^misdirect=(\d+):(\d+)$/.exec(spec);
    if (!argv[1] || (!c && !m && spec !== 'clear')) {
      io.stderr(
        'usage: integrity-fault /dev/xvdX corrupt_after_generate=SECTOR | misdirect=FROM:TO | clear\n',
      );
      return 2;
    }
    const d = findDisk(rt, argv[1]);
    if (!d) return noSuchDevice(io, 'integrity-fault', argv[1]);
    if (spec === 'clear') {
      d.queue.faults.corruptAfterGenerate = null;
      d.queue.faults.misdirect = null;
    } else if (c) {
      d.queue.faults.corruptAfterGenerate = { sector: Number(c[1]) };
    } else if (m) {
      d.queue.faults.misdirect = { fromSector: Number(m[1]), toSector: Number(m[2]) };
    }
    io.stdout(`integrity-fault: ${d.name}: ${spec}\n`);
    return 0;
  };

  commands.blkstat = async (argv, io) => {
    // blkstat <device>: the block layer's and blkfront's counters as JSON (where PI errors were caught)
    if (!argv[1]) {
      io.stderr('usage: blkstat /dev/xvdX\n');
      return 2;
    }
    const d = findDisk(rt, argv[1]);
    if (!d) return noSuchDevice(io, 'blkstat', argv[1]);
    const q = d.queue.stats;
    io.stdout(
      JSON.stringify(
        {
          device: d.name,
          integrity: d.queue.integrity()?.name ?? 'none',
          queue: q,
          blkfront: d.front.describe(),
        },
        null,
        2,
      ) + '\n',
    );
    return 0;
  };

  commands['chaos-io'] = chaosIoCommand(rt.disks);

  commands.sh = async (argv, io, ctx) => {
    if (argv[1] !== '-c' || argv.length < 3) {
      io.stderr('sh: usage: sh -c <command line>\n');
      return 2;
    }
    return runCommandLine(argv[2], io, ctx, commands);
  };

  commands.demo = async (_argv, io, ctx) => {
    for (const line of DEMO_SCRIPT) {
      io.stdout(`+ ${line}\n`);
      const status = await runCommandLine(line, io, ctx, commands);
      if (status !== 0) {
        io.stderr(`demo: \`${line}' failed with status ${status}\n`);
        return status;
      }
    }
    io.stdout(
      'demo: 1048576 random bytes written to /dev/xvda with O_DIRECT, read back and verified identical\n',
    );
    return 0;
  };

  commands.fio = async (argv, io, ctx) => (await import('./fio.ts')).fioCommand(rt)(argv, io, ctx);

  commands.help = async (_argv, io) => {
    io.stdout(`commands: ${Object.keys(commands).sort().join(' ')}\n`);
    io.stdout(
      `command lines may use ; && || | > >>, $? and $NAME (e.g. ${quoteArgv(['sh', '-c', 'echo 0 > /sys/block/xvda/integrity/read_verify'])})\n`,
    );
    return 0;
  };

  return commands;
}

/**
 * util-linux's parse_size() (lib/strutils.c), as blkdiscard reads -o and -l: leading blanks, no
 * sign, an integer in C's bases (0x… hex, 0… octal), then an optional unit — K, M, G, T, P, E in
 * powers of 1024 (alone or with iB, either case), or of 1000 with B (KB, MB, …). Null for anything
 * else. Deliberately narrower than util-linux: no fractions (it takes 1.5K), and nothing past 2^53
 * (it takes up to 2^64).
 */
export function strtosize(raw: string): number | null {
  const m = /^\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(?:([KMGTPEkmgtpe])(iB|B)?)?$/.exec(raw);
  if (!m) return null;
  const n =
    m[1].startsWith('0x') || m[1].startsWith('0X')
      ? parseInt(m[1], 16)
      : m[1].startsWith('0')
        ? parseInt(m[1], 8)
        : Number(m[1]);
  const exp = m[2] === undefined ? 0 : 'KMGTPE'.indexOf(m[2].toUpperCase()) + 1;
  const v = n * (m[3] === 'B' ? 1000 : 1024) ** exp;
  return Number.isSafeInteger(v) ? v : null;
}
