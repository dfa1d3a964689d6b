/**
 * ls [-1aAdFp] [FILE]...: names, as GNU ls 8.13 prints them when its output is not a terminal — one
 * per line, sorted byte-wise (the C locale), file operands first, then each directory under a
 * `name:` header when there are several. Enough to discover /dev and /sys; no long listing.
 */
import { STRERROR, type DirentKind, type GuestCommand } from './vfs.ts';

/** -F's indicator of a kind (devices have none). */
const INDICATOR: Partial<Record<DirentKind, string>> = { dir: '/', symlink: '@', socket: '=' };

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export const ls: GuestCommand = async (argv, io, ctx) => {
  const o = { a: false, A: false, d: false, F: false, p: false };
  const operands: string[] = [];
  const args = argv.slice(1);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (const ch of a.slice(1)) {
        if (ch === '1') continue;
        if (!(ch in o)) {
          io.stderr(
            ch === 'l'
              ? 'ls: -l: long listings are not available in this guest (ls [-1aAdFp] [FILE]...)\n'
              : `ls: invalid option -- '${ch}'\nTry \`ls --help' for more information.\n`,
          );
          return 2;
        }
        o[ch as keyof typeof o] = true;
      }
    } else operands.push(a);
  }
  const paths = operands.length ? operands : ['.'];
  const mark = (kind: DirentKind) => (o.F ? (INDICATOR[kind] ?? '') : o.p && kind === 'dir' ? '/' : '');
  let status = 0;
  const files: string[] = [];
  const dirs: Array<{ path: string; names: string[] }> = [];
  for (const path of paths) {
    const guestPath = path === '.' ? '/' : path;
    const entries = await ctx.vfs.readdir(guestPath);
    if (!('errno' in entries) && !o.d) {
      const names = entries
        .filter((e) => o.a || o.A || !e.name.startsWith('.'))
        .map((e) => e.name + mark(e.kind));
      if (o.a) names.push('.', '..');
      dirs.push({ path, names: names.sort(byName) });
      continue;
    }
    if (!('errno' in entries)) {
      files.push(path + mark('dir'));
      continue;
    }
    if (entries.errno !== 'ENOTDIR') {
      io.stderr(
        entries.errno === 'ENOENT'
          ? `ls: cannot access ${path}: ${STRERROR.ENOENT}\n`
          : `ls: cannot open directory ${path}: ${STRERROR[entries.errno]}\n`,
      );
      status = 2;
      continue;
    }
    // not a directory: the operand itself, if it exists
    const f = await ctx.vfs.open(guestPath, { read: true, write: false });
    if ('errno' in f) {
      io.stderr(`ls: cannot access ${path}: ${STRERROR[f.errno]}\n`);
      status = 2;
      continue;
    }
    await f.close();
    files.push(path);
  }
  files.sort(byName);
  for (const f of files) io.stdout(`${f}\n`);
  const headers = paths.length > 1;
  dirs.sort((a, b) => byName(a.path, b.path));
  dirs.forEach((d, k) => {
    if (headers) io.stdout(`${k > 0 || files.length > 0 ? '\n' : ''}${d.path}:\n`);
    for (const n of d.names) io.stdout(`${n}\n`);
  });
  return status;
};
