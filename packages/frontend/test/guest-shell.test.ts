/**
 * The guest shell and the tools a pipeline needs: `|` with SIGPIPE semantics, `$?` and variables as
 * sh expands them, and ls, head, tail, wc, grep in their GNU output, over the in-memory VFS.
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/guest/commands.ts';
import { parseCommandLine, PIPE_BUF_MAX } from '../src/guest/shell.ts';
import type { CommandIo } from '../src/guest/vfs.ts';
import { MemoryVfs } from './memory-vfs.ts';
import { runCaptured } from './run-captured.ts';

function sh(line: string, vfs = new MemoryVfs()): Promise<{ status: number; out: string; err: string }> {
  return runCaptured(line, vfs, COMMANDS);
}

const LINES = Array.from({ length: 12 }, (_, i) => `line ${i + 1}\n`).join('');

describe('pipes', () => {
  it("connect one command's output to the next one's input", async () => {
    const vfs = new MemoryVfs().addFile('/tmp/abc', 'abc');
    expect(await sh('echo hello | cat', vfs)).toEqual({ status: 0, out: 'hello\n', err: '' });
    expect((await sh('dd if=/tmp/abc status=none | md5sum', vfs)).out).toBe(
      '900150983cd24fb0d6963f7d28e17f72  -\n',
    );
    expect(
      (await sh('cat /tmp/abc | dd of=/tmp/copy status=none && cmp /tmp/abc /tmp/copy', vfs)).status,
    ).toBe(0);
    expect((await sh('echo a b c | wc -w', vfs)).out).toBe('3\n');
  });

  it('end a writer whose reader has finished (SIGPIPE); the status is the last command', async () => {
    // cat would read /dev/zero for ever: head's exit ends it
    const r = await sh('cat /dev/zero | head -c 3 | wc -c; echo $?');
    expect(r).toEqual({ status: 0, out: '3\n0\n', err: '' });
    expect((await sh('true | false; echo $?')).out).toBe('1\n');
    expect((await sh('false | true; echo $?')).out).toBe('0\n');
  });

  it('hold at most PIPE_BUF_MAX bytes: a writer whose reader does not read waits, and ends with it', async () => {
    let chunks = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const commands = {
      ...COMMANDS,
      // writes 4 KiB at a time for ever, waiting on the pipe as cat and dd do
      produce: async (_a: string[], io: CommandIo) => {
        for (;;) {
          if (io.signal.aborted) return 141;
          io.stdout('z'.repeat(4096));
          chunks++;
          await io.drain?.();
        }
      },
      hold: async () => {
        await released;
        return 0;
      },
    };
    const run = runCaptured('produce | hold; echo $?', new MemoryVfs(), commands);
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    // 16 chunks fill the pipe; the 16th write's drain waits
    expect(chunks).toBe(PIPE_BUF_MAX / 4096);
    release();
    expect(await run).toEqual({ status: 0, out: '0\n', err: '' });
    expect(chunks).toBeLessThanOrEqual(PIPE_BUF_MAX / 4096 + 1);
  });

  it('tools without a pipe say there is no terminal to read', async () => {
    const r = await sh('cat');
    expect(r.status).toBe(1);
    expect(r.err).toBe('cat: -: no standard input here (this guest has no terminal; use a pipe: … | cmd)\n');
    expect((await sh('echo x | dd skip=1 status=none')).err).toBe(
      'dd: skip= on standard input is not supported in this guest\n',
    );
  });
});

describe('$? and variables', () => {
  it('expand as sh does: unquoted values split, quoted kept, single quotes literal', async () => {
    expect((await sh(`X=abc; echo $X \${X}d "$X" '$X'`)).out).toBe('abc abcd abc $X\n');
    expect((await sh('X="a  b"; echo [$X] "[$X]"')).out).toBe('[a b] [a  b]\n');
    expect((await sh('echo a${NOPE}b "$NOPE" x')).out).toBe('ab  x\n');
    // an assignment before a command is that command's environment, not the shell's
    expect((await sh('X=1 echo "[$X]"; echo "[$X]"')).out).toBe('[]\n[]\n');
  });

  it('$? is the status of the last pipeline', async () => {
    expect((await sh('false; echo $?; true; echo $?')).out).toBe('1\n0\n');
    expect(await sh('nosuch; echo $?')).toEqual({
      status: 0,
      out: '127\n',
      err: 'sh: nosuch: command not found\n',
    });
    // names every object inherits are not commands
    for (const name of ['constructor', 'toString', 'valueOf', '__proto__', 'hasOwnProperty'])
      expect(await sh(`${name} x && echo ran; echo $?`)).toEqual({
        status: 0,
        out: '127\n',
        err: `sh: ${name}: command not found\n`,
      });
    expect((await sh('ls /nope; S=$?; echo status $S')).out).toBe('status 2\n');
  });

  it('a redirection target can be a variable', async () => {
    const vfs = new MemoryVfs();
    expect((await sh('F=/tmp/out; echo hi > $F; cat /tmp/out', vfs)).out).toBe('hi\n');
  });

  it('syntax errors', async () => {
    expect(parseCommandLine('echo a |')).toEqual({
      ok: false,
      error: 'syntax error: unexpected end of file',
    });
    expect(await sh('| cat')).toEqual({
      status: 2,
      out: '',
      err: "sh: syntax error near unexpected token `|'\n",
    });
    expect((await sh('echo a | | cat')).err).toBe("sh: syntax error near unexpected token `|'\n");
    expect((await sh('a && ; b')).err).toBe("sh: syntax error near unexpected token `;'\n");
    expect(parseCommandLine('echo a;')).toMatchObject({ ok: true });
  });

  it('refuses what sh would expand or redirect and this shell cannot, rather than taking it for text', async () => {
    const vfs = new MemoryVfs();
    for (const [line, what] of [
      ['echo $(echo hi)', '$('],
      ['echo "$(echo hi)"', '$('],
      ['echo `echo x`', '`'],
      ['echo "a`b"', '`'],
      ['echo ${X:-def}', '${'],
      ['echo $$ $1', '$$'],
      ['echo $1', '$1'],
      ['(echo a)', '('],
      ['! true', '!'],
      // 2> named standard error; the 2 was an argument, written with stdout to the file
      ['echo data 2>/tmp/e', '2>'],
    ])
      expect(await sh(line, vfs), line).toEqual({
        status: 2,
        out: '',
        err: `sh: syntax error: '${what}' is not supported by this shell\n`,
      });
    expect(vfs.exists('/tmp/e')).toBe(false);
    // 1> is >; a lone $ and a ! inside a word are text, as in sh
    expect(await sh('echo one 1>/tmp/o; cat /tmp/o; echo $ a!b !x', vfs)).toEqual({
      status: 0,
      out: 'one\n$ a!b !x\n',
      err: '',
    });
  });

  it('takes Latin-1 text only: a character beyond U+00FF is refused, not cut to its low byte', async () => {
    const vfs = new MemoryVfs();
    expect(await sh('echo \u20ac > /tmp/u', vfs)).toEqual({
      status: 2,
      out: '',
      err: 'sh: "\u20ac" (U+20AC): this shell takes Latin-1 text only\n',
    });
    expect(vfs.exists('/tmp/u')).toBe(false);
    await sh('echo \u00e9 > /tmp/e', vfs);
    expect(Buffer.from(vfs.contents('/tmp/e'))).toEqual(Buffer.from([0xe9, 0x0a]));
  });
});

describe('head, tail, wc, grep', () => {
  const vfs = () => new MemoryVfs().addFile('/tmp/lines', LINES).addFile('/tmp/two', 'x y\nz\n');

  it('head and tail', async () => {
    expect((await sh('head -n 2 /tmp/lines', vfs())).out).toBe('line 1\nline 2\n');
    expect((await sh('head -3 /tmp/lines', vfs())).out).toBe('line 1\nline 2\nline 3\n');
    expect((await sh('head /tmp/lines', vfs())).out.split('\n')).toHaveLength(11);
    expect((await sh('tail -n 2 /tmp/lines', vfs())).out).toBe('line 11\nline 12\n');
    expect((await sh('tail -n +12 /tmp/lines', vfs())).out).toBe('line 12\n');
    expect((await sh('head -c 4 /tmp/lines', vfs())).out).toBe('line');
    expect((await sh('head -n 1 /tmp/two /tmp/lines', vfs())).out).toBe(
      '==> /tmp/two <==\nx y\n\n==> /tmp/lines <==\nline 1\n',
    );
    expect((await sh('head /nope', vfs())).err).toBe(
      "head: cannot open `/nope' for reading: No such file or directory\n",
    );
  });

  it('wc pads as coreutils: one count of one input not at all, pipes to 7, files to their size', async () => {
    expect((await sh('wc -l /tmp/lines', vfs())).out).toBe('12 /tmp/lines\n');
    expect((await sh('wc /tmp/two', vfs())).out).toBe('2 3 6 /tmp/two\n');
    expect((await sh('cat /tmp/two | wc', vfs())).out).toBe('      2       3       6\n');
    expect((await sh('wc -lc /tmp/two /tmp/lines', vfs())).out).toBe(
      ' 2  6 /tmp/two\n12 87 /tmp/lines\n14 93 total\n', // 93 bytes in all: two digits
    );
  });

  it('grep: basic regular expressions, -E, -F, -v, -c, -n, -i; status 0, 1 or 2', async () => {
    expect(await sh('grep "line 1[01]" /tmp/lines', vfs())).toEqual({
      status: 0,
      out: 'line 10\nline 11\n',
      err: '',
    });
    expect((await sh('grep -n "^line \\(2\\|3\\)$" /tmp/lines', vfs())).out).toBe('2:line 2\n3:line 3\n');
    expect((await sh('grep -E "^line (2|3)$" /tmp/lines', vfs())).out).toBe('line 2\nline 3\n');
    expect((await sh('grep -c -v 1 /tmp/lines', vfs())).out).toBe('8\n');
    expect((await sh('grep -F "e 1." /tmp/lines', vfs())).status).toBe(1);
    expect((await sh('grep -i LINE.12 /tmp/lines', vfs())).out).toBe('line 12\n');
    expect((await sh('cat /tmp/two | grep z', vfs())).out).toBe('z\n');
    expect(await sh('grep z /tmp/two /nope', vfs())).toEqual({
      status: 2,
      out: '/tmp/two:z\n',
      err: 'grep: /nope: No such file or directory\n',
    });
    expect((await sh('grep -z x /tmp/two', vfs())).err).toBe(
      "grep: invalid option -- 'z'\nUsage: grep [OPTION]... PATTERN [FILE]...\nTry `grep --help' for more information.\n",
    );
  });
});

describe('ls', () => {
  it('lists names one per line, sorted; files first, then directories under headers', async () => {
    const vfs = new MemoryVfs().addBlockDevice('/dev/xvda', 4096).addFile('/tmp/b').addFile('/tmp/a');
    expect((await sh('ls /dev', vfs)).out).toBe('null\nurandom\nxvda\nzero\n');
    expect((await sh('ls', vfs)).out).toBe('dev\nmnt\nroot\ntmp\n');
    expect((await sh('ls -F /', vfs)).out).toBe('dev/\nmnt/\nroot/\ntmp/\n');
    expect((await sh('ls -d /dev /tmp/a', vfs)).out).toBe('/dev\n/tmp/a\n');
    expect((await sh('ls /tmp /dev/xvda /mnt', vfs)).out).toBe('/dev/xvda\n\n/mnt:\n\n/tmp:\na\nb\n');
    expect((await sh('ls -a /mnt', vfs)).out).toBe('.\n..\n');
  });

  it('errors', async () => {
    expect(await sh('ls /nope')).toEqual({
      status: 2,
      out: '',
      err: 'ls: cannot access /nope: No such file or directory\n',
    });
    expect((await sh('ls -l /dev')).err).toBe(
      'ls: -l: long listings are not available in this guest (ls [-1aAdFp] [FILE]...)\n',
    );
    expect((await sh('ls -z')).err).toBe(
      "ls: invalid option -- 'z'\nTry `ls --help' for more information.\n",
    );
  });
});
