/**
 * `dd` for the simulated DomU, reproducing GNU coreutils 8.13 dd (Debian wheezy, 2013) byte for byte
 * on stderr, because kernel engineers compare its output with the real tool. Behaviour was read from
 * coreutils src/dd.c of the 8.12-8.14 era (copyright 1985-2011; `writing to %s` / `reading %s`
 * diagnostics, `quote()` in `locale_quoting_style` giving `name' in the C locale) and the number
 * formatting from gnulib lib/human.c (see human.ts).
 *
 * Later-dd features are added where asked for, with the later semantics: status=none (8.20),
 * status=progress (8.24, printed in the 8.13 statistics format), iflag=count_bytes/skip_bytes and
 * oflag=seek_bytes (8.16).
 *
 * Deliberate departures, because the guest has no file descriptors of its own:
 * - Standard input is a pipe (`… | dd`) or absent: without if= and without a pipe dd says so and exits 1.
 * - Without of= the output goes to the command's stdout as latin1 text, like a pipe or tty: it is
 *   a character device for seek= (lseek succeeds) and fsync fails with EINVAL.
 * - conv=ascii/ebcdic/ibm and conv=block/unblock (with cbs=) are refused as unsupported.
 * - Buffers above 256 MiB are refused with dd's "memory exhausted" message (the guest is small).
 * - GuestFile has no ftruncate: for `seek=N` on a regular file without conv=notrunc, the file is cut
 *   to N*obs bytes by rewriting its prefix (or zero-extended), which leaves the same content.
 */
import { latin1Text, ownEntry } from '@pvblk/shared';
import { stdinFile } from './stdin.ts';
import {
  STRERROR,
  type Errno,
  type GuestCommand,
  type GuestFile,
  type OpenFlags,
  type CommandIo,
  type GuestCommandContext,
} from './vfs.ts';
import {
  DD_HUMAN_OPTS,
  ddRate,
  ddSize,
  formatFixed,
  formatG,
  humanReadable,
  human_base_1024,
} from './human.ts';
import { getoptLong } from './getopt.ts';

/** errno values dd can report that the VFS never returns. */
type DdErrno = Errno | 'EOVERFLOW';
function strerror(errno: DdErrno): string {
  return errno === 'EOVERFLOW' ? 'Value too large for defined data type' : STRERROR[errno];
}

/**
 * gnulib quote() in the C locale (locale_quoting_style): `name', with C-style backslash escapes for
 * the closing quote, backslashes and unprintable bytes (octal), as 8.x coreutils printed names.
 */
export function quote(name: string): string {
  const named: Record<number, string> = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r' };
  let out = '`';
  for (const byte of Buffer.from(name, 'utf8')) {
    if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x27) out += "\\'";
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else if (named[byte]) out += `\\${named[byte]}`;
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `${out}'`;
}

// --- number parsing: gnulib xstrtoumax() as dd calls it --------------------------------------------

const LONGINT_OK = 0;
const LONGINT_OVERFLOW = 1;
const LONGINT_INVALID_SUFFIX_CHAR = 2;
const LONGINT_INVALID = 4;
const UINTMAX_MAX = (1n << 64n) - 1n;
const OFF_T_MAX = (1n << 63n) - 1n;
/** MAX_BLOCKSIZE(): min(SIZE_MAX - slop, SSIZE_MAX, OFF_T_MAX) on LP64 is SSIZE_MAX. */
const MAX_BLOCKSIZE = OFF_T_MAX;
/** dd's valid suffix letters; the trailing "0" enables the kB/KiB two- and three-letter forms. */
const DD_SUFFIXES = 'bcEGkKMPTwYZ0';

interface Strtol {
  err: number;
  value: bigint;
  /** Index just past what was consumed, like strtol's *endptr. */
  end: number;
}

function xstrtoumax(s: string, validSuffixes: string): Strtol {
  const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\n\v\f\r'.includes(c);
  let i = 0;
  while (isSpace(s[i])) i++;
  // Unsigned conversions reject a minus sign rather than wrapping like strtoumax would.
  if (s[i] === '-') return { err: LONGINT_INVALID, value: 0n, end: 0 };
  if (s[i] === '+') i++;
  const digitsStart = i;
  while (i < s.length && s[i] >= '0' && s[i] <= '9') i++;
  let err = LONGINT_OK;
  let tmp: bigint;
  let p: number;
  if (i === digitsStart) {
    // No number, but a valid suffix alone counts as 1 (so "K" means 1024).
    p = 0;
    if (s[0] !== undefined && validSuffixes.includes(s[0])) tmp = 1n;
    else return { err: LONGINT_INVALID, value: 0n, end: 0 };
  } else {
    p = i;
    tmp = BigInt(s.slice(digitsStart, i));
    if (tmp > UINTMAX_MAX) {
      tmp = UINTMAX_MAX;
      err = LONGINT_OVERFLOW;
    }
  }
  if (p < s.length) {
    const c = s[p];
    if (!validSuffixes.includes(c)) return { err: err | LONGINT_INVALID_SUFFIX_CHAR, value: tmp, end: p };
    let base = 1024n;
    let suffixes = 1;
    if (validSuffixes.includes('0')) {
      if (s[p + 1] === 'i') {
        if (s[p + 2] === 'B') suffixes += 2;
      } else if (s[p + 1] === 'B' || s[p + 1] === 'D') {
        base = 1000n;
        suffixes++;
      }
    }
    const powers: Record<string, number> = {
      E: 6,
      G: 3,
      g: 3,
      k: 1,
      K: 1,
      M: 2,
      m: 2,
      P: 5,
      T: 4,
      t: 4,
      Y: 8,
      Z: 7,
    };
    let factor: bigint;
    if (c === 'b') factor = 512n;
    else if (c === 'B') factor = 1024n;
    else if (c === 'c') factor = 1n;
    else if (c === 'w') factor = 2n;
    else if (powers[c] !== undefined) factor = base ** BigInt(powers[c]);
    else return { err: err | LONGINT_INVALID_SUFFIX_CHAR, value: tmp, end: p };
    // bkm_scale saturates on overflow.
    if (tmp * factor > UINTMAX_MAX) {
      tmp = UINTMAX_MAX;
      err |= LONGINT_OVERFLOW;
    } else tmp *= factor;
    p += suffixes;
    if (p < s.length) err |= LONGINT_INVALID_SUFFIX_CHAR;
  }
  return { err, value: tmp, end: p };
}

/** dd's parse_integer(): a number with suffixes, optionally `x`-multiplied (e.g. 2x512, 1Mx4). */
export function parseDdNumber(s: string): bigint | null {
  const r = xstrtoumax(s, DD_SUFFIXES);
  if (r.err === LONGINT_INVALID_SUFFIX_CHAR && s[r.end] === 'x') {
    const multiplier = parseDdNumber(s.slice(r.end + 1));
    if (multiplier === null) return null;
    const product = r.value * multiplier;
    return product > UINTMAX_MAX ? null : product;
  }
  return r.err === LONGINT_OK ? r.value : null;
}

// --- operands ---------------------------------------------------------------------------------------

/** Conversions; `twobufs` marks those that make dd copy through a separate output buffer. */
const CONVERSIONS: Record<string, { twobufs: boolean }> = {
  ascii: { twobufs: true },
  ebcdic: { twobufs: true },
  ibm: { twobufs: true },
  block: { twobufs: true },
  unblock: { twobufs: true },
  lcase: { twobufs: true },
  ucase: { twobufs: true },
  swab: { twobufs: true },
  noerror: { twobufs: false },
  nocreat: { twobufs: false },
  excl: { twobufs: false },
  notrunc: { twobufs: false },
  sync: { twobufs: false },
  fdatasync: { twobufs: false },
  fsync: { twobufs: false },
};

/**
 * iflag=/oflag= symbols valid on GNU/Linux. binary, text, cio and nolinks are 0 there, and dd's
 * table lookup treats a zero value as unknown, so they are rejected like any unknown word.
 */
const FLAGS = new Set([
  'append',
  'direct',
  'directory',
  'dsync',
  'noatime',
  'nocache',
  'noctty',
  'nofollow',
  'nonblock',
  'sync',
  'fullblock',
  'count_bytes',
  'skip_bytes',
  'seek_bytes',
]);

const STATUSES = new Set(['none', 'noxfer', 'progress']);

type Status = 'default' | 'none' | 'noxfer' | 'progress';

interface DdConfig {
  inputFile: string | undefined;
  outputFile: string | undefined;
  ibs: number;
  obs: number;
  /** The block sizes as given, for messages about sizes too large to be exact as a number. */
  ibsExact: bigint;
  obsExact: bigint;
  twobufs: boolean;
  conv: Set<string>;
  iflags: Set<string>;
  oflags: Set<string>;
  status: Status;
  skipRecords: bigint;
  skipBytes: number;
  seekRecords: bigint;
  seekBytes: number;
  maxRecords: bigint;
  maxBytes: number;
  warnPartialRead: boolean;
}

/** Thrown to leave dd with an exit status, like exit() in the C code. */
class Exit {
  constructor(readonly code: number) {}
}

const TRY_HELP = "Try `dd --help' for more information.\n";
const MAX_BUFFER = 256 * 1024 * 1024;

const HELP = `Usage: dd [OPERAND]...
  or:  dd OPTION
Copy a file, converting and formatting according to the operands.

  bs=BYTES        read and write up to BYTES bytes at a time
  cbs=BYTES       convert BYTES bytes at a time
  conv=CONVS      convert the file as per the comma separated symbol list
  count=BLOCKS    copy only BLOCKS input blocks
  ibs=BYTES       read up to BYTES bytes at a time (default: 512)
  if=FILE         read from FILE instead of stdin (a pipe: … | dd)
  iflag=FLAGS     read as per the comma separated symbol list
  obs=BYTES       write BYTES bytes at a time (default: 512)
  of=FILE         write to FILE instead of stdout
  oflag=FLAGS     write as per the comma separated symbol list
  seek=BLOCKS     skip BLOCKS obs-sized blocks at start of output
  skip=BLOCKS     skip BLOCKS ibs-sized blocks at start of input
  status=WHICH    none, noxfer (no transfer statistics) or progress

BLOCKS and BYTES may be followed by the following multiplicative suffixes:
c =1, w =2, b =512, kB =1000, K =1024, MB =1000*1000, M =1024*1024, xM =M
GB =1000*1000*1000, G =1024*1024*1024, and so on for T, P, E, Z, Y.

Each CONV symbol may be:

  lcase     change upper case to lower case
  ucase     change lower case to upper case
  swab      swap every pair of input bytes
  sync      pad every input block with NULs to ibs-size
  excl      fail if the output file already exists
  nocreat   do not create the output file
  notrunc   do not truncate the output file
  noerror   continue after read errors
  fdatasync  physically write output file data before finishing
  fsync     likewise, but also write metadata

Each FLAG symbol may be:

  append    append mode (makes sense only for output; conv=notrunc suggested)
  direct    use direct I/O for data
  dsync     use synchronized I/O for data
  sync      likewise, but also for metadata
  fullblock  accumulate full blocks of input (iflag only)
  count_bytes  treat 'count=N' as a byte count (iflag only)
  skip_bytes  treat 'skip=N' as a byte count (iflag only)
  seek_bytes  treat 'seek=N' as a byte count (oflag only)
`;

/** Parses argv like dd's main()/scanargs(); returns the config or the exit status after messages. */
function scanArgs(argv: string[], io: CommandIo): DdConfig | number {
  const args = argv.slice(1);
  const err = (msg: string): void => io.stderr(`dd: ${msg}\n`);

  // parse_long_options() only looks at a lone argument: --help / --version, abbreviations allowed.
  if (args.length === 1 && args[0].startsWith('--') && args[0].length > 2) {
    const name = args[0].slice(2);
    if ('help'.startsWith(name)) {
      io.stdout(HELP);
      return 0;
    }
    if ('version'.startsWith(name)) {
      io.stdout('dd (pvblk guest) modelled on GNU coreutils 8.13\n');
      return 0;
    }
  }
  // getopt_long(argc, argv, "", NULL, NULL): dd has no options, so the first one is an error.
  const parsed = getoptLong('dd', args, '', []);
  if (!parsed.ok) {
    io.stderr(`${parsed.message}\n${TRY_HELP}`);
    return 1;
  }
  const operands = parsed.operands;

  const conv = new Set<string>();
  const iflags = new Set<string>();
  const oflags = new Set<string>();
  let status: Status = 'default';
  let inputFile: string | undefined;
  let outputFile: string | undefined;
  let ibs = 0n;
  let obs = 0n;
  let bs = 0n;
  let cbs = 0n;
  let skip = 0n;
  let seek = 0n;
  let count: bigint | undefined;

  const usageError = (msg: string): number => {
    err(msg);
    io.stderr(TRY_HELP);
    return 1;
  };
  /** parse_symbols(): a comma-separated list where each word must be in the table. */
  const symbols = (val: string, valid: (w: string) => boolean, what: string): string[] | string => {
    const words = val.split(',');
    for (const w of words) if (!valid(w)) return `${what}: ${quote(w)}`;
    return words;
  };

  for (const operand of operands) {
    const eq = operand.indexOf('=');
    if (eq < 0) return usageError(`unrecognized operand ${quote(operand)}`);
    const name = operand.slice(0, eq);
    const val = operand.slice(eq + 1);
    if (name === 'if') inputFile = val;
    else if (name === 'of') outputFile = val;
    else if (name === 'conv' || name === 'iflag' || name === 'oflag' || name === 'status') {
      const [valid, what, into] =
        name === 'conv'
          ? [(w: string) => ownEntry(CONVERSIONS, w) !== undefined, 'invalid conversion', conv]
          : name === 'iflag'
            ? [(w: string) => FLAGS.has(w), 'invalid input flag', iflags]
            : name === 'oflag'
              ? [(w: string) => FLAGS.has(w), 'invalid output flag', oflags]
              : [(w: string) => STATUSES.has(w), 'invalid status flag', null];
      const words = symbols(val, valid, what);
      if (typeof words === 'string') return usageError(words);
      if (into) for (const w of words) into.add(w);
      else status = words[words.length - 1] as Status;
    } else {
      const n = parseDdNumber(val);
      let invalid = n === null;
      const v = n ?? 0n;
      if (name === 'ibs') {
        invalid ||= !(0n < v && v <= MAX_BLOCKSIZE);
        ibs = v;
      } else if (name === 'obs') {
        invalid ||= !(0n < v && v <= MAX_BLOCKSIZE);
        obs = v;
      } else if (name === 'bs') {
        invalid ||= !(0n < v && v <= MAX_BLOCKSIZE);
        bs = v;
      } else if (name === 'cbs') {
        invalid ||= !(0n < v);
        cbs = v;
      } else if (name === 'skip') skip = v;
      else if (name === 'seek') seek = v;
      else if (name === 'count') count = v;
      else return usageError(`unrecognized operand ${quote(name)}`);
      if (invalid) {
        err(`invalid number ${quote(val)}`);
        return 1;
      }
    }
  }

  let twobufs = false;
  if (bs) ibs = obs = bs;
  else twobufs = true; // POSIX: without bs=, partial reads are aggregated into obs-sized writes.
  if (!ibs) ibs = 512n;
  if (!obs) obs = 512n;
  if (!cbs) {
    conv.delete('block');
    conv.delete('unblock');
  }
  for (const c of conv) if (CONVERSIONS[c].twobufs) twobufs = true;

  // 8.13 prints this one with plain quotes; the byte-count flags came later and use quote().
  if (oflags.has('fullblock')) return usageError("invalid output flag: 'fullblock'");
  if (iflags.has('seek_bytes')) return usageError(`invalid input flag: ${quote('seek_bytes')}`);
  if (oflags.has('count_bytes')) return usageError(`invalid output flag: ${quote('count_bytes')}`);
  if (oflags.has('skip_bytes')) return usageError(`invalid output flag: ${quote('skip_bytes')}`);

  const both = (a: string, b: string, set = conv): boolean => set.has(a) && set.has(b);
  const fatal = (msg: string): number => {
    err(msg);
    return 1;
  };
  if (both('ascii', 'ebcdic') || both('ascii', 'ibm') || both('ebcdic', 'ibm'))
    return fatal('cannot combine any two of {ascii,ebcdic,ibm}');
  if (both('block', 'unblock')) return fatal('cannot combine block and unblock');
  if (both('lcase', 'ucase')) return fatal('cannot combine lcase and ucase');
  if (both('excl', 'nocreat')) return fatal('cannot combine excl and nocreat');
  if (both('direct', 'nocache', iflags) || both('direct', 'nocache', oflags))
    return fatal('cannot combine direct and nocache');
  for (const c of ['ascii', 'ebcdic', 'ibm', 'block', 'unblock']) {
    if (conv.has(c)) return fatal(`conv=${c} is not supported in this guest`);
  }
  const ibsN = Number(ibs);
  const obsN = Number(obs);
  let skipRecords = skip;
  let skipBytes = 0;
  if (iflags.has('skip_bytes') && skip !== 0n) {
    skipRecords = skip / ibs;
    skipBytes = Number(skip % ibs);
  }
  let maxRecords = UINTMAX_MAX;
  let maxBytes = 0;
  if (count !== undefined) {
    if (iflags.has('count_bytes')) {
      maxRecords = count / ibs;
      maxBytes = Number(count % ibs);
    } else maxRecords = count;
  }
  let seekRecords = seek;
  let seekBytes = 0;
  if (oflags.has('seek_bytes') && seek !== 0n) {
    seekRecords = seek / obs;
    seekBytes = Number(seek % obs);
  }
  const warnPartialRead =
    !twobufs &&
    !iflags.has('fullblock') &&
    (skipRecords !== 0n ||
      (0n < maxRecords && maxRecords < UINTMAX_MAX) ||
      iflags.has('direct') ||
      oflags.has('direct'));

  return {
    inputFile,
    outputFile,
    ibs: ibsN,
    obs: obsN,
    ibsExact: ibs,
    obsExact: obs,
    twobufs,
    conv,
    iflags,
    oflags,
    status,
    skipRecords,
    skipBytes,
    seekRecords,
    seekBytes,
    maxRecords,
    maxBytes,
    warnPartialRead,
  };
}

/** The command's stdout seen as an output file (a pipe or tty: writes always complete). */
function stdoutFile(io: CommandIo): GuestFile {
  return {
    path: 'standard output',
    kind: 'chardev',
    size: () => null,
    pread: async () => ({ ok: false, errno: 'EBADF' }),
    pwrite: async (buf) => {
      io.stdout(latin1Text(buf));
      await io.drain?.();
      return { ok: true, n: buf.length };
    },
    fsync: async () => ({ ok: false, errno: 'EINVAL' }),
    close: async () => ({ ok: true, n: 0 }),
  };
}

class DdRun {
  private input: GuestFile | null = null;
  private output: GuestFile | null = null;
  private inputName = 'standard input';
  private outputName = 'standard output';
  private outputFlags: OpenFlags = { read: false, write: true };
  /** Whether the output is still opened with O_DIRECT (dd drops it for a short final write). */
  private outputDirect = false;
  private fsyncAtEnd = false;

  // Kernel file positions, and dd's own idea of the input offset (they differ after read errors).
  private inPos = 0;
  private outPos = 0;
  private inputOffset = 0;

  private rFull = 0n;
  private rPartial = 0n;
  private wFull = 0n;
  private wPartial = 0n;
  private wBytes = 0n;
  private startTime = 0n;
  private nextTime = 0n;
  private progressLen = 0;
  private prevNread = 0;

  // Copy state.
  private obuf = new Uint8Array(0);
  private oc = 0;
  private savedChar: number | null = null;

  constructor(
    private readonly cfg: DdConfig,
    private readonly io: CommandIo,
    private readonly ctx: GuestCommandContext,
  ) {}

  private error(msg: string, errno?: DdErrno): void {
    this.io.stderr(`dd: ${msg}${errno ? `: ${strerror(errno)}` : ''}\n`);
  }

  /** error (EXIT_FAILURE, ...): message and exit 1 without statistics. */
  private die(msg: string, errno?: DdErrno): never {
    this.error(msg, errno);
    throw new Exit(1);
  }

  async run(): Promise<number> {
    try {
      return await this.main();
    } catch (e) {
      if (e instanceof Exit) return e.code;
      throw e;
    } finally {
      // Process exit closes whatever is still open; a close error then goes unreported.
      await this.input?.close();
      await this.output?.close();
    }
  }

  private async main(): Promise<number> {
    const { cfg, ctx } = this;
    if (cfg.inputFile === undefined) {
      // standard input: the pipe of `… | dd`; without one there is no terminal to read here
      if (!this.io.stdin)
        this.die('reading from standard input needs a pipe in this guest (… | dd); use if=FILE');
      if (cfg.iflags.has('direct')) this.die(`setting flags for ${quote(this.inputName)}`, 'EINVAL');
      if (cfg.skipRecords !== 0n || cfg.skipBytes !== 0)
        this.die('skip= on standard input is not supported in this guest');
      this.input = stdinFile(this.io.stdin);
    } else {
      this.inputName = cfg.inputFile;
      const inFlags: OpenFlags = {
        read: true,
        write: false,
        direct: cfg.iflags.has('direct'),
        sync: cfg.iflags.has('sync') || cfg.iflags.has('dsync'),
      };
      this.input = await this.openChecked(cfg.inputFile, inFlags, cfg.iflags);
    }

    const seeking = cfg.seekRecords !== 0n || cfg.seekBytes !== 0;
    if (cfg.outputFile === undefined) {
      if (cfg.oflags.has('direct')) this.die(`setting flags for ${quote(this.outputName)}`, 'EINVAL');
      this.output = stdoutFile(this.io);
    } else {
      this.outputName = cfg.outputFile;
      const base: OpenFlags = {
        read: false,
        write: true,
        create: !cfg.conv.has('nocreat'),
        truncate: !(seeking || cfg.conv.has('notrunc')),
        direct: cfg.oflags.has('direct'),
        sync: cfg.oflags.has('sync') || cfg.oflags.has('dsync'),
      };
      if (cfg.conv.has('excl')) {
        // OpenFlags has no O_EXCL: an existing file (or device) is what O_CREAT|O_EXCL refuses.
        const probe = await ctx.vfs.open(cfg.outputFile, { read: true, write: false });
        if (!('errno' in probe)) {
          await probe.close();
          this.die(`opening ${quote(cfg.outputFile)}`, 'EEXIST');
        }
      }
      // Read access only in case seek= has to read; write-only may still work.
      let out: GuestFile | { errno: Errno } | null = null;
      if (seeking) {
        out = await ctx.vfs.open(cfg.outputFile, { ...base, read: true });
        if (!('errno' in out)) this.outputFlags = { ...base, read: true };
      }
      if (out === null || 'errno' in out) {
        out = await ctx.vfs.open(cfg.outputFile, base);
        this.outputFlags = base;
      }
      if ('errno' in out) this.die(`opening ${quote(cfg.outputFile)}`, out.errno);
      this.output = out;
      if (cfg.oflags.has('directory')) this.die(`opening ${quote(cfg.outputFile)}`, 'ENOTDIR');
      this.outputDirect = !!base.direct;

      if (cfg.seekRecords !== 0n && !cfg.conv.has('notrunc')) {
        const size = cfg.seekRecords * BigInt(cfg.obs) + BigInt(cfg.seekBytes);
        if (OFF_T_MAX / BigInt(cfg.obs) < cfg.seekRecords) {
          this.die(
            `offset too large: cannot truncate to a length of seek=${cfg.seekRecords} (${cfg.obs}-byte) blocks`,
          );
        }
        // ftruncate() fails quietly on devices; only regular files are cut.
        if (this.output.kind === 'file') await this.truncateOutput(Number(size));
      }
    }

    this.startTime = ctx.now();
    this.nextTime = this.startTime + 1_000_000_000n;
    const status = await this.copy();
    return this.quit(status);
  }

  private async openChecked(path: string, flags: OpenFlags, symbols: Set<string>): Promise<GuestFile> {
    const f = await this.ctx.vfs.open(path, flags);
    if ('errno' in f) this.die(`opening ${quote(path)}`, f.errno);
    if (symbols.has('directory')) {
      await f.close();
      this.die(`opening ${quote(path)}`, 'ENOTDIR');
    }
    return f;
  }

  /**
   * ftruncate(STDOUT_FILENO, size) on a regular output file: a file grows with a hole, as on any file
   * system, and is cut without reading it. (It was built from writes of zeros, which put 80 GB on the
   * host's disk for `seek=1P`, and a read of the whole kept part into memory.)
   */
  private async truncateOutput(size: number): Promise<void> {
    const out = this.output!;
    if ((out.size() ?? 0) === size || !out.ftruncate) return;
    const r = await out.ftruncate(size);
    if (!r.ok)
      this.die(`failed to truncate to ${size} bytes in output file ${quote(this.outputName)}`, r.errno);
  }

  // --- signals, exit, statistics --------------------------------------------------------------------

  /** process_signals(): on SIGINT close, print the statistics and die of the signal (status 130). */
  private async processSignals(): Promise<void> {
    if (!this.io.signal.aborted) return;
    await this.cleanup();
    this.printStats();
    throw new Exit(130);
  }

  /** cleanup(): close input then output; a failure exits at once, without statistics. */
  private async cleanup(): Promise<void> {
    const input = this.input;
    this.input = null;
    if (input) {
      const r = await input.close();
      if (!r.ok) this.die(`closing input file ${quote(this.inputName)}`, r.errno);
    }
    const output = this.output;
    this.output = null;
    if (output) {
      const r = await output.close();
      if (!r.ok) this.die(`closing output file ${quote(this.outputName)}`, r.errno);
    }
  }

  private async quit(code: number): Promise<never> {
    await this.cleanup();
    this.printStats();
    throw new Exit(code);
  }

  private printStats(): void {
    const { status } = this.cfg;
    if (status === 'none') return;
    if (this.progressLen > 0) {
      this.io.stderr('\n');
      this.progressLen = 0;
    }
    this.io.stderr(`${this.rFull}+${this.rPartial} records in\n${this.wFull}+${this.wPartial} records out\n`);
    if (status === 'noxfer') return;
    this.io.stderr(`${this.xferStats(null)}\n`);
  }

  /** "N bytes (S) copied, T s, R/s"; `progressTime` selects the whole-second progress form. */
  private xferStats(progressTime: bigint | null): string {
    const now = progressTime ?? this.ctx.now();
    const w = this.wBytes;
    const bytes = `${w} ${w === 1n ? 'byte' : 'bytes'} (${ddSize(w)}) copied`;
    let deltaS = 0;
    let rate = 'Infinity B';
    if (this.startTime < now) {
      const deltaNs = now - this.startTime;
      deltaS = Number(deltaNs) / 1e9;
      rate = ddRate(w, deltaNs);
    }
    const t = progressTime === null ? formatG(deltaS) : formatFixed(deltaS, 0);
    return `${bytes}, ${t} s, ${rate}/s`;
  }

  private maybeProgress(): void {
    if (this.cfg.status !== 'progress') return;
    const t = this.ctx.now();
    if (this.nextTime <= t) {
      const line = this.xferStats(t);
      const pad = line.length < this.progressLen ? ' '.repeat(this.progressLen - line.length) : '';
      this.io.stderr(`\r${line}${pad}`);
      this.progressLen = line.length;
      this.nextTime += 1_000_000_000n;
    }
  }

  // --- I/O ------------------------------------------------------------------------------------------

  /** iread(): one read at the input position; warns about a partial read followed by more data. */
  private async iread(buf: Uint8Array): Promise<{ n: number } | { errno: Errno }> {
    await this.processSignals();
    const r = await this.input!.pread(buf, this.inPos);
    if (!r.ok) return { errno: r.errno };
    this.inPos += r.n;
    if (r.n > 0 && this.cfg.warnPartialRead) {
      if (0 < this.prevNread && this.prevNread < buf.length) {
        const p = this.prevNread;
        if (this.cfg.status !== 'none') {
          this.error(`warning: partial read (${p} ${p === 1 ? 'byte' : 'bytes'}); suggest iflag=fullblock`);
        }
        this.cfg.warnPartialRead = false;
      }
      this.prevNread = r.n;
    }
    return { n: r.n };
  }

  private async readBlock(buf: Uint8Array): Promise<{ n: number } | { errno: Errno }> {
    if (!this.cfg.iflags.has('fullblock')) return this.iread(buf);
    let total = 0;
    while (total < buf.length) {
      const r = await this.iread(buf.subarray(total));
      if ('errno' in r) return r;
      if (r.n === 0) break;
      total += r.n;
    }
    return { n: total };
  }

  /**
   * iwrite(): writes all of buf, retrying short writes; returns the bytes written and, when short,
   * the errno (a zero-byte write counts as ENOSPC, as dd says for devices that do that).
   */
  private async iwrite(buf: Uint8Array): Promise<{ n: number; errno?: Errno }> {
    if (this.outputDirect && buf.length < this.cfg.obs) await this.dropDirect();
    let total = 0;
    while (total < buf.length) {
      await this.processSignals();
      const out = this.output!;
      // O_APPEND: every write lands at the current end (a block device's end gives ENOSPC).
      if (this.cfg.oflags.has('append')) this.outPos = out.size() ?? this.outPos;
      const r = await out.pwrite(buf.subarray(total), this.outPos);
      if (!r.ok) return { n: total, errno: r.errno };
      if (r.n === 0) return { n: total, errno: 'ENOSPC' };
      total += r.n;
      this.outPos += r.n;
    }
    return { n: total };
  }

  /** A short final write cannot use O_DIRECT: reopen without it and fsync at the end instead. */
  private async dropDirect(): Promise<void> {
    this.outputDirect = false;
    const flags: OpenFlags = { ...this.outputFlags, create: false, truncate: false, direct: false };
    const f = await this.ctx.vfs.open(this.outputName, flags);
    if ('errno' in f) {
      if (this.cfg.status !== 'none')
        this.error(`failed to turn off O_DIRECT: ${quote(this.outputName)}`, f.errno);
    } else {
      await this.output!.close();
      this.output = f;
    }
    this.fsyncAtEnd = true;
  }

  /** write_output(): flush the full output buffer; any failure ends dd. */
  private async writeOutput(): Promise<void> {
    const r = await this.iwrite(this.obuf.subarray(0, this.cfg.obs));
    this.wBytes += BigInt(r.n);
    if (r.n !== this.cfg.obs) {
      this.error(`writing to ${quote(this.outputName)}`, r.errno);
      if (r.n !== 0) this.wPartial++;
      await this.quit(1);
    }
    this.wFull++;
    this.oc = 0;
  }

  private async copySimple(data: Uint8Array): Promise<void> {
    let start = 0;
    do {
      const nfree = Math.min(data.length - start, this.cfg.obs - this.oc);
      this.obuf.set(data.subarray(start, start + nfree), this.oc);
      start += nfree;
      this.oc += nfree;
      if (this.oc >= this.cfg.obs) await this.writeOutput();
    } while (start < data.length);
  }

  /** conv=swab across buffers: an odd trailing byte waits for the next buffer. */
  private swab(data: Uint8Array): Uint8Array {
    let bytes = data;
    if (this.savedChar !== null) {
      bytes = new Uint8Array(data.length + 1);
      bytes[0] = this.savedChar;
      bytes.set(data, 1);
      this.savedChar = null;
    }
    let n = bytes.length;
    if (n & 1) {
      this.savedChar = bytes[--n];
    }
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 2) {
      out[i] = bytes[i + 1];
      out[i + 1] = bytes[i];
    }
    return out;
  }

  /** skip(): lseek past records*blocksize+bytes on the input or output; true if all were skipped. */
  private skip(isInput: boolean, records: bigint, blocksize: number, bytes: number): bigint {
    const file = isInput ? this.input! : this.output!;
    const name = isInput ? this.inputName : this.outputName;
    const offset = records * BigInt(blocksize) + BigInt(bytes);
    const pos = BigInt(isInput ? this.inPos : this.outPos);
    let lseekErrno: DdErrno | null = null;
    if (records <= OFF_T_MAX / BigInt(blocksize)) {
      const target = pos + offset;
      const size = file.size();
      // Linux block_llseek refuses positions past the device end; files and char devices allow any.
      if (target > OFF_T_MAX || (file.kind === 'blockdev' && size !== null && target > BigInt(size))) {
        lseekErrno = 'EINVAL';
      } else if (isInput) {
        this.inPos = Number(target);
        let advance = offset;
        let remaining = 0n;
        if (file.kind === 'file' && size !== null && BigInt(size) < BigInt(this.inputOffset) + offset) {
          // Skipping past EOF: report the full blocks not skipped, and stop the offset at EOF.
          remaining = (offset - BigInt(size)) / BigInt(blocksize);
          advance = BigInt(size) - BigInt(this.inputOffset);
        }
        this.inputOffset += Number(advance);
        return remaining;
      } else {
        this.outPos = Number(target);
        return 0n;
      }
    }
    // lseek failed (or was not tried because the offset is unrepresentable); SEEK_END works on all of
    // our files, so dd knows the request itself was impossible.
    lseekErrno ??= 'EOVERFLOW';
    this.error(`${quote(name)}: ${isInput ? 'cannot skip' : 'cannot seek'}`, lseekErrno);
    throw new SkipFailed();
  }

  // --- the main loop --------------------------------------------------------------------------------

  private async copy(): Promise<number> {
    const { cfg } = this;
    const ibs = cfg.ibs;
    const noerror = cfg.conv.has('noerror');
    const syncPad = cfg.conv.has('sync');
    let exitStatus = 0;
    let partread = 0;

    // dd allocates its buffers first thing in dd_copy(), after the opens; failing that, it dies.
    for (const [what, size] of [
      ['input', cfg.ibsExact],
      ['output', cfg.twobufs ? cfg.obsExact : 0n],
    ] as const) {
      if (size > BigInt(MAX_BUFFER)) {
        const h = humanReadable(size, DD_HUMAN_OPTS | human_base_1024, 1n, 1n);
        this.die(`memory exhausted by ${what} buffer of size ${size} bytes (${h})`);
      }
    }

    try {
      if (cfg.skipRecords !== 0n || cfg.skipBytes !== 0) {
        const before = BigInt(this.inputOffset);
        const wanted = before + cfg.skipRecords * BigInt(ibs) + BigInt(cfg.skipBytes);
        const blocksLeft = this.skip(true, cfg.skipRecords, ibs, cfg.skipBytes);
        const bytesLeft = wanted - BigInt(this.inputOffset);
        if ((blocksLeft !== 0n || bytesLeft !== 0n) && cfg.status !== 'none') {
          this.error(`${quote(this.inputName)}: cannot skip to specified offset`);
        }
      }
      if (cfg.seekRecords !== 0n || cfg.seekBytes !== 0)
        this.skip(false, cfg.seekRecords, cfg.obs, cfg.seekBytes);
    } catch (e) {
      if (e instanceof SkipFailed) return this.quit(1);
      throw e;
    }

    if (cfg.maxRecords === 0n && cfg.maxBytes === 0) return exitStatus;

    const ibuf = new Uint8Array(ibs);
    this.obuf = cfg.twobufs ? new Uint8Array(cfg.obs) : ibuf;
    const recordLimit = cfg.maxRecords + (cfg.maxBytes ? 1n : 0n);

    while (true) {
      this.maybeProgress();
      if (this.rPartial + this.rFull >= recordLimit) break;

      // With sync+noerror the buffer is zeroed first, so a failed read leaves zeros behind.
      if (syncPad && noerror) ibuf.fill(0);
      const want = this.rPartial + this.rFull >= cfg.maxRecords ? cfg.maxBytes : ibs;
      const r = await this.readBlock(ibuf.subarray(0, want));

      let nread: number;
      if ('errno' in r) {
        if (!noerror || cfg.status !== 'none') this.error(`reading ${quote(this.inputName)}`, r.errno);
        if (noerror) {
          this.printStats();
          const badPortion = ibs - partread;
          // Seek past the bad block; our inputs are all seekable.
          this.inputOffset += badPortion;
          this.inPos = this.inputOffset;
          if (syncPad && !partread) nread = 0;
          else continue;
        } else {
          exitStatus = 1; // write out any partial block, then stop
          break;
        }
      } else {
        if (r.n === 0) break; // EOF
        nread = r.n;
        this.inputOffset += nread;
      }

      let nBytes = nread;
      if (nBytes < ibs) {
        this.rPartial++;
        partread = nBytes;
        if (syncPad) {
          if (!noerror) ibuf.fill(0, nBytes, ibs);
          nBytes = ibs;
        }
      } else {
        this.rFull++;
        partread = 0;
      }

      if (!cfg.twobufs) {
        const w = await this.iwrite(ibuf.subarray(0, nBytes));
        this.wBytes += BigInt(w.n);
        if (w.n !== nBytes) {
          // 8.13 says "writing", not "writing to", here, and does not count the partial record.
          this.error(`writing ${quote(this.outputName)}`, w.errno);
          return 1;
        }
        if (nBytes === ibs) this.wFull++;
        else this.wPartial++;
        continue;
      }

      let data = ibuf.subarray(0, nBytes);
      if (cfg.conv.has('lcase') || cfg.conv.has('ucase')) data = this.translate(data);
      if (cfg.conv.has('swab')) data = this.swab(data);
      await this.copySimple(data);
    }

    if (this.savedChar !== null) {
      const c = this.savedChar;
      this.savedChar = null;
      await this.copySimple(Uint8Array.of(c));
    }

    // Write out the last, partial output block.
    if (this.oc !== 0) {
      const w = await this.iwrite(this.obuf.subarray(0, this.oc));
      this.wBytes += BigInt(w.n);
      if (w.n !== 0) this.wPartial++;
      if (w.n !== this.oc) {
        this.error(`writing ${quote(this.outputName)}`, w.errno);
        return 1;
      }
    }

    let fsync = cfg.conv.has('fsync') || this.fsyncAtEnd;
    if (cfg.conv.has('fdatasync')) {
      // GuestFile offers only fsync; fdatasync's failure handling is dd's, though.
      const r = await this.output!.fsync();
      if (!r.ok) {
        if (r.errno !== 'EINVAL') {
          this.error(`fdatasync failed for ${quote(this.outputName)}`, r.errno);
          exitStatus = 1;
        }
        fsync = true;
      }
    }
    if (fsync) {
      const r = await this.output!.fsync();
      if (!r.ok) {
        this.error(`fsync failed for ${quote(this.outputName)}`, r.errno);
        return 1;
      }
    }
    return exitStatus;
  }

  /** conv=lcase/ucase in the C locale: ASCII letters only. */
  private translate(data: Uint8Array): Uint8Array {
    const upper = this.cfg.conv.has('ucase');
    const out = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const c = data[i];
      if (upper && c >= 0x61 && c <= 0x7a) out[i] = c - 0x20;
      else if (!upper && c >= 0x41 && c <= 0x5a) out[i] = c + 0x20;
      else out[i] = c;
    }
    return out;
  }
}

/** A failed skip()/seek has printed its message; dd then quits with statistics. */
class SkipFailed {}

export const dd: GuestCommand = async (argv, io, ctx) => {
  const cfg = scanArgs(argv, io);
  if (typeof cfg === 'number') return cfg;
  return new DdRun(cfg, io, ctx).run();
};
