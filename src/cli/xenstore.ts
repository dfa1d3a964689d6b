/**
 * `pvblk xenstore-ls|-read|-write|-rm|-list|-chmod|-watch|-exists`: the xenstore tools of a Xen Dom0
 * (tools/xs-clients/xenstore_client.c), with their options, output, messages and exit statuses,
 * performed as Dom0 through the host API (operator only: the hypervisor has one Dom0 connection and
 * the host holds it; docs/tools.md). Messages start with the tool's name as warnx/err print it; where
 * the real tool says only "couldn't read path P", pvblk adds why when it is not a plain ENOENT.
 */
import { Buffer } from 'node:buffer';
import type { Command } from 'commander';
import type { XsResult } from '@pvblk/backend';
import { defaultRunDir } from './shell.ts';
import { operatorCall, refusal, resolveOperatorAccess, type OperatorAccess } from './xl-access.ts';
import { formatLs, sanitiseValue, unsanitiseValue } from './xenstore-format.ts';
import { strerror } from '@pvblk/shared';

/** The longest line xenstore-watch takes from the host (paths are at most 3072 bytes). */
const WATCH_LINE_MAX = 64 * 1024;

class ToolExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface Failure {
  path: string;
  errno: string;
  message: string;
}

const USAGE: Record<string, string> = {
  read: '[-h] [-p] [-R] key [...]',
  write: '[-h] [-R] key value [...]',
  rm: '[-h] [-t] key [...]',
  exists: '[-h] key',
  list: '[-h] [-p] key [...]',
  ls: '[-h] [-f] [-p] [path]',
  chmod: '[-h] [-u] [-r] key <mode [modes...]>',
  watch: '[-h] [-n NR] key',
};

export function registerXenstore(program: Command, fail: (e: unknown) => never): void {
  const tool = (mode: string, description: string) =>
    program
      .command(`xenstore-${mode}`)
      .description(`${description} (as Dom0, through the host; operator only)`)
      .option('--api <url>', "the host API (default: $PVBLK_TOOLSTACK_URL, else the run dir's stack)")
      .option('--run-dir <dir>', 'the run dir of `pvblk up` ($PVBLK_RUN_DIR)', defaultRunDir())
      .argument('[args...]');
  const prog = (mode: string) => `xenstore-${mode}`;
  const warn = (mode: string, msg: string) => process.stderr.write(`${prog(mode)}: ${msg}\n`);
  const usage = (mode: string): never => {
    warn(mode, `Usage: ${prog(mode)} ${USAGE[mode]}`);
    throw new ToolExit(1);
  };
  /** "couldn't read path P" — and why, unless it is simply absent. */
  const why = (f: Failure) =>
    f.errno === 'ENOENT' ? '' : `: ${strerror(f.errno) ?? f.errno} (${f.message})`;

  const run =
    (mode: string, fn: (a: OperatorAccess, args: string[], o: Record<string, unknown>) => Promise<number>) =>
    async (args: string[], o: Record<string, unknown> & { api?: string; runDir: string }) => {
      try {
        const a = resolveOperatorAccess(o);
        process.exitCode = await fn(a, args, o);
      } catch (e) {
        if (e instanceof ToolExit) process.exitCode = e.code;
        else fail(e);
      }
    };
  const call = async (a: OperatorAccess, body: Record<string, unknown>): Promise<XsResult> => {
    const r = await operatorCall(a, 'POST', '/xenstore', body);
    const no = refusal(r);
    if (no) {
      process.stderr.write(`${prog(String(body.mode))}: ${no.error}: ${no.message}\n`);
      throw new ToolExit(1);
    }
    return r.body as XsResult;
  };

  tool('read', 'read the values of keys')
    .option('-p, --prefix', 'print the key before its value')
    .option('-R, --raw', 'print the value as it is, without escaping')
    .action(
      run('read', async (a, keys, o) => {
        if (keys.length === 0) usage('read');
        const r = (await call(a, { mode: 'read', paths: keys })) as Extract<XsResult, { mode: 'read' }>;
        let text = '';
        for (const v of r.values) {
          if (o.prefix) text += `${v.path}: `;
          text += o.raw ? v.value : `${sanitiseValue(v.value)}\n`;
        }
        if (r.failed) warn('read', `couldn't read path ${r.failed.path}${why(r.failed)}`);
        process.stdout.write(text);
        return r.failed ? 1 : 0;
      }),
    );

  tool('write', 'write values to keys (key value pairs)')
    .option('-R, --raw', 'write the value as it is, without interpreting escapes')
    .action(
      run('write', async (a, args, o) => {
        if (args.length === 0 || args.length % 2 === 1) usage('write');
        const pairs: Array<[string, string]> = [];
        for (let i = 0; i < args.length; i += 2) {
          const bytes = o.raw ? Buffer.from(args[i + 1], 'utf8') : unsanitiseValue(args[i + 1]);
          const text = bytes.toString('utf8');
          if (!Buffer.from(text, 'utf8').equals(bytes)) {
            warn(
              'write',
              `could not write path ${args[i]}: the value is not UTF-8 (pvblk's XenStore holds text)`,
            );
            return 1;
          }
          pairs.push([args[i], text]);
        }
        const r = await call(a, { mode: 'write', pairs });
        if (r.failed) warn('write', `could not write path ${r.failed.path}${why(r.failed)}`);
        return r.failed ? 1 : 0;
      }),
    );

  tool('rm', 'remove keys and everything below them')
    .option('-t, --tidy', 'also remove parents left empty, up to the root')
    .action(
      run('rm', async (a, keys, o) => {
        if (keys.length === 0) usage('rm');
        const r = await call(a, { mode: 'rm', paths: keys, tidy: o.tidy === true });
        if (r.failed) warn('rm', `could not remove path ${r.failed.path}${why(r.failed)}`);
        return r.failed ? 1 : 0;
      }),
    );

  tool('exists', 'exit 0 if the key exists, 1 if not').action(
    run('exists', async (a, keys) => {
      if (keys.length === 0) usage('exists');
      const r = await call(a, { mode: 'exists', paths: keys });
      if (r.failed && r.failed.errno !== 'ENOENT') warn('exists', `${r.failed.path}${why(r.failed)}`);
      return r.failed ? 1 : 0;
    }),
  );

  tool('list', 'list the children of keys')
    .option('-p, --prefix', 'print each child with its full path')
    .action(
      run('list', async (a, keys, o) => {
        if (keys.length === 0) usage('list');
        const r = (await call(a, { mode: 'list', paths: keys })) as Extract<XsResult, { mode: 'list' }>;
        let text = '';
        for (const l of r.lists) {
          const pref = l.path === '/' ? '' : l.path;
          for (const c of l.children) text += o.prefix ? `${pref}/${c}\n` : `${c}\n`;
        }
        if (r.failed) warn('list', `could not list path ${r.failed.path}${why(r.failed)}`);
        process.stdout.write(text);
        return r.failed ? 1 : 0;
      }),
    );

  tool('ls', 'print a subtree: names, values and (-p) permissions')
    .option('-f, --flat', 'full paths, one per line')
    .option('-p, --prefix', 'show permissions')
    .action(
      run('ls', async (a, paths, o) => {
        const list = paths.length === 0 ? ['/'] : paths;
        const maxWidth = process.stdout.isTTY && process.stdout.columns ? process.stdout.columns - 2 : 80;
        for (const path of list) {
          const r = (await call(a, { mode: 'ls', path, perms: o.prefix === true })) as Extract<
            XsResult,
            { mode: 'ls' }
          >;
          const { lines, warnings } = formatLs(r.nodes, {
            flat: o.flat === true,
            perms: o.prefix === true,
            maxWidth,
          });
          process.stdout.write(lines.map((l) => l + '\n').join(''));
          for (const w of warnings) warn('ls', w);
          if (r.failed) {
            warn('ls', `xs_directory (${r.failed.path}): ${strerror(r.failed.errno) ?? r.failed.errno}`);
            return 1;
          }
        }
        return 0;
      }),
    );

  tool('chmod', 'set the permissions of a key: the owner first, e.g. n0 r1')
    .option('-u, --upto', 'also on every parent')
    .option('-r, --recurse', 'also on every child')
    .action(
      run('chmod', async (a, args, o) => {
        if (args.length === 0) usage('chmod');
        const [path, ...perms] = args;
        for (const p of perms)
          if (!'nrwb'.includes(p[0] ?? '')) {
            warn('chmod', `Invalid permission specification: '${p[0] ?? ''}'`);
            return 1;
          }
        const r = await call(a, {
          mode: 'chmod',
          path,
          perms,
          upto: o.upto === true,
          recurse: o.recurse === true,
        });
        if (r.failed) {
          warn(
            'chmod',
            `Error occurred setting permissions on '${r.failed.path}': ${strerror(r.failed.errno) ?? r.failed.errno}${r.failed.errno === 'EINVAL' ? ` (${r.failed.message})` : ''}`,
          );
          return 1;
        }
        return 0;
      }),
    );

  tool('watch', 'print the path of every change at or below the keys (the first event is the key itself)')
    .option('-n, --number <n>', 'stop after this many events')
    .option('-d, --depth <n>', 'only events at most this many levels below the key')
    .action(
      run('watch', async (a, keys, o) => {
        if (keys.length === 0) usage('watch');
        const max = o.number === undefined ? -1 : Number.parseInt(String(o.number), 10) || 0;
        const depth = o.depth === undefined ? -1 : Number.parseInt(String(o.depth), 10);
        if (max === 0) return 0;
        const url = new URL('/xenstore/watch', a.api);
        for (const k of keys) url.searchParams.append('path', k);
        const ac = new AbortController();
        process.on('SIGINT', () => ac.abort());
        let res: Response;
        try {
          res = await fetch(url, { headers: { authorization: `Bearer ${a.token}` }, signal: ac.signal });
        } catch (e) {
          warn('watch', `Unable to add watch on ${keys[0]}: ${(e as Error).message}`);
          return 1;
        }
        if (!res.ok) {
          const b = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
          warn('watch', `Unable to add watch on ${keys[0]}: ${b.error ?? res.status}: ${b.message ?? ''}`);
          return 1;
        }
        const within = (p: string) =>
          depth < 0 ||
          keys.some((k) =>
            p === k ? true : p.startsWith(`${k}/`) && p.slice(k.length + 1).split('/').length <= depth,
          );
        let count = 0;
        let buf = '';
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += Buffer.from(chunk).toString('utf8');
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const p = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (!within(p)) continue;
              process.stdout.write(p + '\n');
              if (max > 0 && ++count >= max) {
                ac.abort();
                return 0;
              }
            }
            // what is left has no new line: a path is at most XENSTORE_ABS_PATH_MAX (3072) bytes, so a
            // host that sends more is not sending paths, and must not grow this command
            if (buf.length > WATCH_LINE_MAX) {
              warn('watch', `the host sent more than ${WATCH_LINE_MAX} bytes without a new line`);
              ac.abort();
              return 1;
            }
          }
        } catch (e) {
          if (ac.signal.aborted) return 0;
          throw e;
        }
        warn('watch', 'the host closed the watch');
        return 1;
      }),
    );
}
