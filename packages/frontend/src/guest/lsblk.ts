/**
 * lsblk of util-linux 2.20/2.21 (the 3.x era): the columns it knows by their names, read from sysfs as
 * lsblk reads them (`size`, `ro`, `removable`, `queue/…`), laid out by its table code (lib/tt.c) for
 * output that is not a terminal: a column is as wide as its widest cell or its header, or its width
 * hint when that lies between; right-aligned columns are padded on the left; the last column is not
 * padded. -r (raw) and -P (pairs) print the cells as they are.
 *
 * Options: -o/--output LIST, -b/--bytes, -n/--noheadings, -r/--raw, -P/--pairs, -l/--list,
 * -d/--nodeps, -a/--all, -D/--discard, -t/--topology, -m/--perms, -f/--fs, and device operands.
 */
import type { CommandIo, GuestCommandContext } from './vfs.ts';
import { latin1Text, ownEntry } from '@pvblk/shared';

interface Column {
  /** Width hint: >= 1 an absolute width, < 1 a fraction of the terminal (no effect here). */
  whint: number;
  right: boolean;
}

const COLUMNS: Record<string, Column> = {
  NAME: { whint: 0.25, right: false },
  KNAME: { whint: 0.3, right: false },
  'MAJ:MIN': { whint: 6, right: false },
  FSTYPE: { whint: 0.1, right: false },
  MOUNTPOINT: { whint: 0.1, right: false },
  LABEL: { whint: 0.1, right: false },
  UUID: { whint: 36, right: false },
  RO: { whint: 1, right: true },
  RM: { whint: 1, right: true },
  ROTA: { whint: 1, right: true },
  MODEL: { whint: 0.1, right: false },
  SIZE: { whint: 6, right: true },
  STATE: { whint: 7, right: false },
  OWNER: { whint: 0.1, right: false },
  GROUP: { whint: 0.1, right: false },
  MODE: { whint: 10, right: false },
  ALIGNMENT: { whint: 6, right: true },
  'MIN-IO': { whint: 6, right: true },
  'OPT-IO': { whint: 6, right: true },
  'PHY-SEC': { whint: 7, right: true },
  'LOG-SEC': { whint: 7, right: true },
  SCHED: { whint: 0.1, right: false },
  'RQ-SIZE': { whint: 5, right: true },
  TYPE: { whint: 4, right: false },
  'DISC-ALN': { whint: 6, right: true },
  'DISC-GRAN': { whint: 6, right: true },
  'DISC-MAX': { whint: 6, right: true },
  'DISC-ZERO': { whint: 1, right: true },
};

const DEFAULT = ['NAME', 'MAJ:MIN', 'RM', 'SIZE', 'RO', 'TYPE', 'MOUNTPOINT'];
const SETS: Record<string, string[]> = {
  D: ['NAME', 'DISC-ALN', 'DISC-GRAN', 'DISC-MAX', 'DISC-ZERO'],
  t: ['NAME', 'ALIGNMENT', 'MIN-IO', 'OPT-IO', 'PHY-SEC', 'LOG-SEC', 'ROTA', 'SCHED', 'RQ-SIZE'],
  m: ['NAME', 'SIZE', 'OWNER', 'GROUP', 'MODE'],
  f: ['NAME', 'FSTYPE', 'LABEL', 'MOUNTPOINT'],
};
const LONG: Record<string, string> = {
  '--bytes': 'b',
  '--noheadings': 'n',
  '--raw': 'r',
  '--pairs': 'P',
  '--list': 'l',
  '--nodeps': 'd',
  '--all': 'a',
  '--discard': 'D',
  '--topology': 't',
  '--perms': 'm',
  '--fs': 'f',
};

/** size_to_human_string(SIZE_SUFFIX_1LETTER): 8M, 465.8G, 512B — one decimal, rounded. */
export function humanSize(bytes: number): string {
  let exp = 0;
  while (exp < 60 && bytes >= 2 ** (exp + 10)) exp += 10;
  const letter = 'BKMGTPE'[exp / 10];
  let dec = Math.floor(bytes / 2 ** exp);
  let frac = exp ? bytes % 2 ** exp : 0;
  if (frac) {
    frac = Math.floor((Math.floor(frac / 2 ** (exp - 10)) + 50) / 100);
    if (frac === 10) {
      dec++;
      frac = 0;
    }
  }
  return frac ? `${dec}.${frac}${letter}` : `${dec}${letter}`;
}

export async function lsblk(
  argv: string[],
  io: CommandIo,
  ctx: GuestCommandContext,
  disks: string[],
): Promise<number> {
  const flags = new Set<string>();
  let columns: string[] | null = null;
  const devices: string[] = [];
  const args = argv.slice(1);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let list: string | undefined;
    if (a === '-o' || a === '--output') list = args[++i] ?? '';
    else if (a.startsWith('--output=')) list = a.slice('--output='.length);
    else if (a.startsWith('-o') && !a.startsWith('--')) list = a.slice(2);
    else if (ownEntry(LONG, a) !== undefined) flags.add(LONG[a]);
    else if (/^-[bnrPldaDtmf]+$/.test(a)) for (const c of a.slice(1)) flags.add(c);
    else if (a.startsWith('-')) {
      io.stderr(
        a.startsWith('--')
          ? `lsblk: unrecognized option '${a}'\n`
          : `lsblk: invalid option -- '${a.slice(1).replace(/[bnrPldaDtmf]/g, '')[0]}'\n`,
      );
      io.stderr("Try `lsblk --help' for more information.\n");
      return 1;
    } else devices.push(a);
    if (list !== undefined) {
      columns = [];
      for (const name of list.split(',')) {
        const known = Object.keys(COLUMNS).find((c) => c.toLowerCase() === name.toLowerCase());
        if (!known) {
          io.stderr(`lsblk: unknown column: ${name}\n`);
          return 1;
        }
        columns.push(known);
      }
    }
  }
  for (const set of Object.keys(SETS)) if (flags.has(set) && !columns) columns = SETS[set];
  const cols = columns ?? DEFAULT;
  const mode = flags.has('P') ? 'pairs' : flags.has('r') ? 'raw' : 'table';

  let names = disks;
  if (devices.length) {
    names = [];
    for (const dev of devices) {
      const name = dev.replace(/^\/dev\//, '');
      if (!dev.startsWith('/dev/') || !disks.includes(name)) {
        io.stderr(`lsblk: ${dev}: not a block device\n`);
        return 1;
      }
      names.push(name);
    }
  }

  const sys = async (dev: string, attr: string): Promise<string> => {
    const f = await ctx.vfs.open(`/sys/block/${dev}/${attr}`, { read: true, write: false });
    if ('errno' in f) return '';
    const buf = new Uint8Array(4096);
    const r = await f.pread(buf, 0);
    await f.close();
    return r.ok ? latin1Text(buf.subarray(0, r.n)).trim() : '';
  };
  const bytes = flags.has('b');
  const size = (v: string) => (v === '' ? '' : bytes ? v : humanSize(Number(v)));
  const rows: string[][] = [];
  for (const dev of names) {
    const discard = Number(await sys(dev, 'queue/discard_max_bytes')) > 0;
    const cell = async (col: string): Promise<string> => {
      switch (col) {
        case 'NAME':
        case 'KNAME':
          return dev;
        case 'MAJ:MIN': {
          const [maj, min] = (await sys(dev, 'dev')).split(':');
          return mode === 'table' ? `${maj.padStart(3)}:${min.padEnd(3)}` : `${maj}:${min}`;
        }
        case 'RO':
          return (await sys(dev, 'ro')) === '1' ? '1' : '0';
        case 'RM':
          return sys(dev, 'removable');
        case 'ROTA':
          return sys(dev, 'queue/rotational');
        case 'SIZE': {
          const sectors = Number(await sys(dev, 'size'));
          return sectors ? size(String(sectors * 512)) : '';
        }
        case 'TYPE':
          return 'disk';
        case 'OWNER':
          return 'root';
        case 'GROUP':
          return 'disk';
        case 'MODE':
          return 'brw-rw----';
        case 'ALIGNMENT':
          return sys(dev, 'alignment_offset');
        case 'MIN-IO':
          return sys(dev, 'queue/minimum_io_size');
        case 'OPT-IO':
          return sys(dev, 'queue/optimal_io_size');
        case 'PHY-SEC':
          return sys(dev, 'queue/physical_block_size');
        case 'LOG-SEC':
          return sys(dev, 'queue/logical_block_size');
        case 'SCHED':
          return /\[([^\]]+)\]/.exec(await sys(dev, 'queue/scheduler'))?.[1] ?? '';
        case 'RQ-SIZE':
          return sys(dev, 'queue/nr_requests');
        case 'DISC-ALN':
          return discard ? sys(dev, 'discard_alignment') : '0';
        case 'DISC-GRAN':
          return size(await sys(dev, 'queue/discard_granularity'));
        case 'DISC-MAX':
          return size(await sys(dev, 'queue/discard_max_bytes'));
        case 'DISC-ZERO':
          return discard ? sys(dev, 'queue/discard_zeroes_data') : '0';
        default:
          // nothing mounted, no filesystem probed, no model or state for a Xen vbd
          return '';
      }
    };
    const row: string[] = [];
    for (const c of cols) row.push(await cell(c));
    rows.push(row);
  }

  const header = !flags.has('n') && rows.length > 0;
  if (mode === 'pairs') {
    for (const r of rows) io.stdout(cols.map((c, k) => `${c}="${r[k]}"`).join(' ') + '\n');
    return 0;
  }
  if (mode === 'raw') {
    for (const r of header ? [cols, ...rows] : rows) io.stdout(r.join(' ') + '\n');
    return 0;
  }
  // tt.c's count_column_width(): widest cell; at least the header; the hint if it lies between
  const widths = cols.map((c, k) => {
    const h = COLUMNS[c];
    let w = Math.max(0, ...rows.map((r) => r[k].length));
    if (w < c.length) w = c.length;
    else if (h.whint >= 1 && w < h.whint && c.length < h.whint) w = h.whint;
    return w;
  });
  const print = (cells: string[]) => {
    let line = '';
    cells.forEach((v, k) => {
      const last = k === cells.length - 1;
      if (COLUMNS[cols[k]].right) line += last && v === '' ? '' : v.padStart(widths[k]);
      else line += last ? v : v.padEnd(widths[k]);
      if (!last) line += ' ';
    });
    io.stdout(line + '\n');
  };
  if (header) print(cols);
  for (const r of rows) print(r);
  return 0;
}
