/**
 * grep, head and wc against GNU grep 3.x / coreutils: several -e patterns, head's negative counts,
 * counting an input larger than any string, GNU's basic regular expressions and their errors,
 * and reading an endless input without starving the event loop.
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/guest/commands.ts';
import { grep, head, wc } from '../src/guest/filters.ts';
import type { CommandIo, GuestCommand, GuestFile, GuestVfs, IoResult } from '../src/guest/vfs.ts';
import { MemoryVfs } from './memory-vfs.ts';
import { hasBackReference, MATCH_LIMIT_MS } from '../src/guest/regex-match.ts';
import { runCaptured } from './run-captured.ts';

type Result = { status: number; out: string; err: string };

function sh(line: string, vfs = new MemoryVfs(), extra: Record<string, GuestCommand> = {}): Promise<Result> {
  return runCaptured(line, vfs, { ...COMMANDS, ...extra });
}

/** A command writing each of `pieces` as its own write, so a reader gets them as separate chunks. */
function writer(pieces: string[]): GuestCommand {
  return async (_argv, io) => {
    for (const p of pieces) io.stdout(p);
    return 0;
  };
}

/**
 * A VFS with one read-only file, /big, of `size` bytes repeating `pattern`, made up as it is read:
 * an input larger than any string without holding it in memory.
 */
function patternVfs(size: number, pattern: string): GuestVfs {
  const unit = Buffer.from(pattern, 'latin1');
  const block = Buffer.alloc(64 * 1024 + 2 * unit.length);
  for (let i = 0; i < block.length; i += unit.length) unit.copy(block, i);
  const file = (): GuestFile => ({
    path: '/big',
    kind: 'file',
    size: () => size,
    async pread(buf: Uint8Array, offset: number): Promise<IoResult> {
      const n = Math.max(0, Math.min(buf.length, size - offset));
      const k = offset % unit.length;
      for (let done = 0; done < n;) {
        // a buffer longer than the block is filled in steps no longer than it
        const step = Math.min(n - done, block.length - 2 * unit.length);
        buf.set(block.subarray((k + done) % unit.length, ((k + done) % unit.length) + step), done);
        done += step;
      }
      return { ok: true, n };
    },
    pwrite: async () => ({ ok: false, errno: 'EBADF' }),
    fsync: async () => ({ ok: true, n: 0 }),
    close: async () => ({ ok: true, n: 0 }),
  });
  return {
    open: async (path) => (path === '/big' ? file() : { errno: 'ENOENT' }),
    readdir: async () => ({ errno: 'ENOTDIR' }),
  };
}

/**
 * Runs a filter directly, interrupting it (as ^C does) after `ms`: the status, and how long the
 * interrupt took to be seen. A command that never lets a timer run is only stopped by its input.
 */
/**
 * Runs `cmd` with an interrupt queued as an immediate: it can only be heard if the command lets the
 * event loop turn while it reads (a read of /dev/zero answers at once).
 */
async function interruptSoon(
  cmd: GuestCommand,
  argv: string[],
): Promise<{ status: number; out: string; err: string }> {
  const ac = new AbortController();
  let out = '';
  let err = '';
  const io: CommandIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: ac.signal };
  setImmediate(() => ac.abort());
  const status = await cmd(argv, io, { vfs: new MemoryVfs(), now: () => 0n });
  return { status, out, err };
}

const FRUIT = 'apple\nbanana\ncherry\nApple pie\n';

describe('grep -e: several patterns, a line matching any', () => {
  const vfs = () => new MemoryVfs().addFile('/tmp/fruit', FRUIT).addFile('/tmp/nuts', 'almond\n');

  it('every -e is a pattern and every operand a file', async () => {
    expect(await sh('grep -e apple -e cherry /tmp/fruit', vfs())).toEqual({
      status: 0,
      out: 'apple\ncherry\n',
      err: '',
    });
    expect(await sh('grep -e kiwi -e melon /tmp/fruit', vfs())).toEqual({ status: 1, out: '', err: '' });
    // one -e: the first operand is a file too
    expect(await sh('grep -e almond /tmp/fruit /tmp/nuts', vfs())).toEqual({
      status: 0,
      out: '/tmp/nuts:almond\n',
      err: '',
    });
    expect((await sh('cat /tmp/fruit | grep -e banana -e cherry', vfs())).out).toBe('banana\ncherry\n');
  });

  it('with -i, -v, -c, -n, -q, and in getopt clusters (-ie PATTERN, -ePATTERN)', async () => {
    expect((await sh('grep -i -e apple -e cherry /tmp/fruit', vfs())).out).toBe('apple\ncherry\nApple pie\n');
    expect((await sh('grep -v -e apple -e cherry /tmp/fruit', vfs())).out).toBe('banana\nApple pie\n');
    expect((await sh('grep -c -e apple -e cherry /tmp/fruit', vfs())).out).toBe('2\n');
    expect((await sh('grep -n -e cherry -e banana /tmp/fruit', vfs())).out).toBe('2:banana\n3:cherry\n');
    expect(await sh('grep -q -e kiwi -e banana /tmp/fruit', vfs())).toEqual({ status: 0, out: '', err: '' });
    expect((await sh('grep -ie APPLE -eban /tmp/fruit', vfs())).out).toBe('apple\nbanana\nApple pie\n');
    expect((await sh('grep -c -e apple -e "" /tmp/fruit', vfs())).out).toBe('4\n'); // '' matches all
  });

  it('-e without its argument', async () => {
    expect(await sh('grep /tmp/fruit -e', vfs())).toEqual({
      status: 2,
      out: '',
      err: "grep: option requires an argument -- 'e'\nUsage: grep [OPTION]... PATTERN [FILE]...\nTry `grep --help' for more information.\n",
    });
  });
});

describe('head with a negative count: all but the last N lines (bytes)', () => {
  const ABC = 'a\nb\nc\n';
  const vfs = () =>
    new MemoryVfs().addFile('/tmp/abc', ABC).addFile('/tmp/open', 'a\nb\nc').addFile('/tmp/empty', '');

  it('-n -N', async () => {
    expect(await sh('head -n -1 /tmp/abc', vfs())).toEqual({ status: 0, out: 'a\nb\n', err: '' });
    expect((await sh('head -n-2 /tmp/abc', vfs())).out).toBe('a\n');
    expect((await sh('head -n -3 /tmp/abc', vfs())).out).toBe('');
    expect((await sh('head -n -7 /tmp/abc', vfs())).out).toBe('');
    expect((await sh('head -n -0 /tmp/abc', vfs())).out).toBe(ABC);
    // a last line without its newline is a line
    expect((await sh('head -n -1 /tmp/open', vfs())).out).toBe('a\nb\n');
    expect((await sh('head -n -1 /tmp/empty', vfs())).out).toBe('');
    expect((await sh('cat /tmp/abc | head -n -1', vfs())).out).toBe('a\nb\n');
    // tail reads the sign as none at all
    expect((await sh('tail -n -1 /tmp/abc', vfs())).out).toBe('c\n');
  });

  it('-c -N', async () => {
    expect((await sh('head -c -2 /tmp/abc', vfs())).out).toBe('a\nb\n');
    expect((await sh('head -c-5 /tmp/abc', vfs())).out).toBe('a');
    expect((await sh('head -c -6 /tmp/abc', vfs())).out).toBe('');
    expect((await sh('head -c -0 /tmp/abc', vfs())).out).toBe(ABC);
    expect((await sh('cat /tmp/abc | head -c -1', vfs())).out).toBe('a\nb\nc');
  });

  it('files larger than a chunk, read from their end, and pipes in pieces, held back by chunks', async () => {
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i}\n`).join(''); // ~260 KiB
    const text = lines + 'no newline';
    const all = text.split(/(?<=\n)/);
    const v = new MemoryVfs().addFile('/tmp/big', text).addBlockDevice('/dev/xvda', 8192);
    for (const n of [1, 2, 7, 29_000, 30_001, 40_000]) {
      const want = all.slice(0, Math.max(0, all.length - n)).join('');
      expect((await sh(`head -n -${n} /tmp/big`, v)).out).toBe(want);
      expect((await sh(`cat /tmp/big | head -n -${n}`, v)).out).toBe(want);
    }
    for (const n of [1, 65_536, 70_000, 400_000]) {
      const want = text.slice(0, Math.max(0, text.length - n));
      expect((await sh(`head -c -${n} /tmp/big`, v)).out).toBe(want);
      expect((await sh(`cat /tmp/big | head -c -${n}`, v)).out).toBe(want);
    }
    // a device's size says where it ends
    expect((await sh('head -c -8000 /dev/xvda', v)).out).toBe('\0'.repeat(192));
    // one byte at a time through a pipe
    const pieces = writer([...'one\ntwo\nthree\nfour']);
    expect((await sh('pieces | head -n -2', v, { pieces })).out).toBe('one\ntwo\n');
    expect((await sh('pieces | head -c -3', v, { pieces })).out).toBe('one\ntwo\nthree\nf');
  });

  it('positive counts still stop where they should', async () => {
    const v = vfs().addFile('/tmp/lines', 'x\n'.repeat(100_000));
    expect((await sh('head -n 3 /tmp/abc', v)).out).toBe(ABC);
    expect((await sh('head -c 3 /tmp/abc', v)).out).toBe('a\nb');
    expect((await sh('head -n 70000 /tmp/lines | wc -l', v)).out).toBe('70000\n');
    expect((await sh('head -c 70000 /tmp/lines | wc -c', v)).out).toBe('70000\n');
    expect((await sh('head -n 1 /tmp/abc /tmp/open', v)).out).toBe(
      '==> /tmp/abc <==\na\n\n==> /tmp/open <==\na\n',
    );
    expect((await sh('cat /dev/zero | head -c 3 | wc -c; echo $?', v)).out).toBe('3\n0\n');
  });
});

describe("grep's matches do not stop the guest", () => {
  it('a pattern without back-references that backtracks too much goes on in linear time: (a|a)*b', async () => {
    const v = new MemoryVfs().addFile('/tmp/a', 'a'.repeat(30) + '\n' + 'a'.repeat(30) + 'b\n');
    // 2^30 steps by backtracking (28 characters took 16 s): V8 goes over to its linear engine
    expect(await sh("grep -E '(a|a)*b' /tmp/a", v)).toEqual({
      status: 0,
      out: 'a'.repeat(30) + 'b\n',
      err: '',
    });
    expect(await sh("grep -c '\\(a\\|a\\)*b' /tmp/a", v)).toEqual({ status: 0, out: '1\n', err: '' });
  });

  it('a match with back-references that runs past its time limit stops grep, naming the line', async () => {
    const v = new MemoryVfs().addFile('/tmp/a', 'abab\n' + 'a'.repeat(40) + '\n' + 'abab\n');
    // back-references are matched as before while they are quick
    expect(await sh("grep -n '\\(ab\\)\\1' /tmp/a", v)).toEqual({
      status: 0,
      out: '1:abab\n3:abab\n',
      err: '',
    });
    const r = await sh("grep '\\(a*\\)*\\1b' /tmp/a", v);
    expect(r.status).toBe(2);
    expect(r.err).toBe(
      `grep: /tmp/a: line 2: matching took more than ${MATCH_LIMIT_MS / 1000} s; stopped (back-references can take exponential time, and this guest's kernel waits for its tools)\n`,
    );
  });

  it('tells a back-reference from an escaped digit in a class or a backslash', () => {
    expect(hasBackReference('(a)\\1')).toBe(true);
    expect(hasBackReference('[\\1]')).toBe(false);
    expect(hasBackReference('\\\\1')).toBe(false);
    expect(hasBackReference('a\\.b')).toBe(false);
  });
});

describe('a filter writing more than its reader has taken', () => {
  it('waits for it between chunks, as a writer blocks on a full pipe: head -c 20000000 /dev/zero', async () => {
    let owed = 0;
    let most = 0;
    let total = 0;
    let drains = 0;
    const io: CommandIo = {
      stdout: (t) => {
        owed += t.length;
        total += t.length;
        most = Math.max(most, owed);
      },
      stderr: () => {},
      signal: new AbortController().signal,
      // the reader takes what is owed before the writer goes on
      drain: async () => {
        drains++;
        await new Promise((r) => setImmediate(r));
        owed = 0;
      },
    };
    const n = 20_000_000;
    expect(
      await head(['head', '-c', String(n), '/dev/zero'], io, { vfs: new MemoryVfs(), now: () => 0n }),
    ).toBe(0);
    expect(total).toBe(n);
    // never more than a chunk ahead of its reader: it had written all 20 MB before the reader's
    // first turn, and a control client reading all along had its session cut at 64 MiB owed
    expect(most).toBeLessThanOrEqual(64 * 1024);
    expect(drains).toBeGreaterThanOrEqual(Math.floor(n / (64 * 1024)));
  });
});

describe('wc counts chunk by chunk', () => {
  it('an input larger than the longest string (513 MiB): exact counts, words across chunks', async () => {
    // 7-byte units: chunk boundaries (64 KiB) fall inside words; the last unit is cut after 'a'
    const size = 2 ** 29 + 2 ** 20;
    const units = Math.floor(size / 7);
    expect(size % 7).toBe(1);
    const vfs = patternVfs(size, 'ab cde\n');
    const r = await runCaptured('wc /big', vfs, COMMANDS);
    // padded to the digits of the file's size
    const counts = [units, 2 * units + 1, size].map((n) => String(n).padStart(9)).join(' ');
    expect(r).toEqual({ status: 0, out: `${counts} /big\n`, err: '' });
  }, 60_000);

  it('words and lines split between pipe chunks are counted once', async () => {
    const pieces = writer(['he', 'llo wo', 'r', 'ld', '\n', '\n', '  x', 'y\tz', '\n', 'tail']);
    expect((await sh('pieces | wc', new MemoryVfs(), { pieces })).out).toBe('      3       5      24\n');
    const bytes = writer([...'a b\nc d e\n f']);
    expect((await sh('bytes | wc -w', new MemoryVfs(), { bytes })).out).toBe('6\n');
    expect((await sh('bytes | wc -l', new MemoryVfs(), { bytes })).out).toBe('2\n');
  });
});

describe('an endless input does not starve the event loop', () => {
  // Before each of these returns, an immediate has run and been heard: the command let the event
  // loop turn while reading /dev/zero (which answers every read at once).
  it('wc -c /dev/zero, wc /dev/zero', async () => {
    for (const argv of [
      ['wc', '-c', '/dev/zero'],
      ['wc', '/dev/zero'],
    ]) {
      expect(await interruptSoon(wc, argv)).toMatchObject({ status: 130, out: '', err: '' });
    }
  });

  it('grep x /dev/zero, head -n -1 /dev/zero, head -c -1 /dev/zero', async () => {
    for (const [cmd, argv] of [
      [grep, ['grep', 'x', '/dev/zero']],
      [head, ['head', '-n', '-1', '/dev/zero']],
      [head, ['head', '-c', '-1', '/dev/zero']],
    ] as const) {
      // (head -c -1 prints as it reads, all but the byte it holds back)
      expect(await interruptSoon(cmd, [...argv])).toMatchObject({ status: 130, err: '' });
    }
  });

  it('a line longer than any string is "memory exhausted", as GNU says when malloc fails', async () => {
    expect(await sh('grep x /dev/zero')).toEqual({ status: 2, out: '', err: 'grep: memory exhausted\n' });
  }, 60_000);
});

describe('grep: GNU basic regular expressions', () => {
  const STARS = '*a\na\nb*\n**\n';
  const vfs = () =>
    new MemoryVfs()
      .addFile('/tmp/stars', STARS)
      .addFile('/tmp/words', 'cat\nconcat\ncats\nthe cat sat\n<cat>\n')
      .addFile('/tmp/misc', 'a{1}\nabab\nab\naa\nx^y\nx$y\n1234\ncr\r\n]\n');

  it('a leading * (or one after \\( \\| ^) is a plain star', async () => {
    expect(await sh("grep '*a' /tmp/stars", vfs())).toEqual({ status: 0, out: '*a\n', err: '' });
    expect((await sh("grep '^*' /tmp/stars", vfs())).out).toBe('*a\n**\n');
    expect((await sh("grep '\\(*a\\)' /tmp/stars", vfs())).out).toBe('*a\n');
    expect((await sh("grep 'q\\|*a' /tmp/stars", vfs())).out).toBe('*a\n');
    // a plain star, then any number of them: the line of stars only
    expect((await sh("grep -c '^**$' /tmp/stars", vfs())).out).toBe('1\n');
    expect((await sh("grep '^b\\**$' /tmp/stars", vfs())).out).toBe('b*\n');
    expect((await sh("grep 'a**' /tmp/stars", vfs())).out).toBe(STARS); // (a*)*: every line
  });

  it('\\< and \\> anchor a word start and end', async () => {
    expect(await sh("grep '\\<cat\\>' /tmp/words", vfs())).toEqual({
      status: 0,
      out: 'cat\nthe cat sat\n<cat>\n',
      err: '',
    });
    expect((await sh("grep '\\<cat' /tmp/words", vfs())).out).toBe('cat\ncats\nthe cat sat\n<cat>\n');
    expect((await sh("grep 'cat\\>' /tmp/words", vfs())).out).toBe('cat\nconcat\nthe cat sat\n<cat>\n');
    expect((await sh("grep -c '\\bcat\\b' /tmp/words", vfs())).out).toBe('3\n');
  });

  it('intervals, groups, back-references, classes; plain ( ) { } | + ? ^ $', async () => {
    const g = async (re: string) => (await sh(`grep '${re}' /tmp/misc`, vfs())).out;
    expect(await g('a{1}')).toBe('a{1}\n');
    expect(await g('^\\(ab\\)\\1$')).toBe('abab\n');
    expect(await g('^a\\{2\\}$')).toBe('aa\n');
    expect(await g('^a\\{,1\\}b$')).toBe('ab\n');
    expect(await g('^[[:digit:]]\\{3,\\}$')).toBe('1234\n');
    expect(await g('x^y')).toBe('x^y\n');
    expect(await g('x$y')).toBe('x$y\n');
    expect(await g('^\\(a\\|x\\)[$^]')).toBe('x^y\nx$y\n');
    expect(await g('[]]')).toBe(']\n');
    expect(await g('^cr.$')).toBe('cr\r\n'); // '.' is any character, a CR too
    expect(await g('\\{1\\}')).toBe('a{1}\n'); // nothing to repeat: plain
  });

  it("errors in glibc regerror() words (and dfa.c's), status 2", async () => {
    const err = async (re: string) => {
      const r = await sh(`grep '${re}' /tmp/misc`, vfs());
      expect(r.status).toBe(2);
      expect(r.out).toBe('');
      return r.err;
    };
    expect(await err('[[:foo:]]')).toBe('grep: Invalid character class name\n');
    expect(await err('a\\{1')).toBe('grep: Unmatched \\{\n');
    expect(await err('a\\{1,')).toBe('grep: Unmatched \\{\n');
    expect(await err('a\\{x\\}')).toBe('grep: Invalid content of \\{\\}\n');
    expect(await err('a\\{2,1\\}')).toBe('grep: Invalid content of \\{\\}\n');
    expect(await err('a\\{40000\\}')).toBe('grep: Regular expression too big\n');
    expect(await err('[abc')).toBe('grep: Unmatched [, [^, [:, [., or [=\n');
    expect(await err('[[:alpha:]')).toBe('grep: Unmatched [, [^, [:, [., or [=\n');
    expect(await err('\\(a')).toBe('grep: Unmatched ( or \\(\n');
    expect(await err('a\\)')).toBe('grep: Unmatched ) or \\)\n');
    expect(await err('a\\')).toBe('grep: Trailing backslash\n');
    expect(await err('\\(a\\)\\2')).toBe('grep: Invalid back reference\n');
    expect(await err('[z-a]')).toBe('grep: Invalid range end\n');
    expect(await err('[[.ab.]]')).toBe('grep: Invalid collation character\n');
    expect(await err('[:space:]')).toBe('grep: character class syntax is [[:space:]], not [:space:]\n');
    // every pattern is checked before grep gives up
    expect((await sh("grep -e '[' -e 'a\\{1' /tmp/misc", vfs())).err).toBe(
      'grep: Unmatched [, [^, [:, [., or [=\ngrep: Unmatched \\{\n',
    );
  });
});
