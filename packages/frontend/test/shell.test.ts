/**
 * The guest toolbox (commands.ts) against exact output: coreutils 8.13 / diffutils 3.2 message
 * formats, and digests checked against well-known values (md5("abc"), md5 of 1 MiB of zeros).
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/guest/commands.ts';
import { MemoryVfs, failReadsCovering } from './memory-vfs.ts';

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

async function sh(
  argv: string[],
  vfs: MemoryVfs,
  signal: AbortSignal = new AbortController().signal,
): Promise<Run> {
  const cmd = COMMANDS[argv[0]];
  if (!cmd) throw new Error(`no command ${argv[0]}`);
  let stdout = '';
  let stderr = '';
  const status = await cmd(
    argv,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), signal },
    { vfs, now: () => 0n },
  );
  return { status, stdout, stderr };
}

const MiB = 1024 * 1024;

describe('COMMANDS', () => {
  it('has the toolbox', () => {
    expect(Object.keys(COMMANDS).sort()).toEqual(
      [
        'cat',
        'cmp',
        'dd',
        'echo',
        'false',
        'grep',
        'head',
        'ls',
        'md5sum',
        'sha1sum',
        'sha256sum',
        'sleep',
        'sync',
        'tail',
        'true',
        'wc',
      ].sort(),
    );
  });
});

describe('md5sum / sha1sum / sha256sum', () => {
  it('prints "<hex>  <path>" for files and devices', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/abc', 'abc').addBlockDevice('/dev/xvda', MiB);
    expect(await sh(['md5sum', '/tmp/abc', '/dev/xvda'], vfs)).toEqual({
      status: 0,
      stdout: '900150983cd24fb0d6963f7d28e17f72  /tmp/abc\nb6d81b360a5672d80c27430f39153e2c  /dev/xvda\n',
      stderr: '',
    });
    expect((await sh(['sha1sum', '/tmp/abc'], vfs)).stdout).toBe(
      'a9993e364706816aba3e25717850c26c9cd0d89d  /tmp/abc\n',
    );
    expect((await sh(['sha256sum', '/tmp/abc', '/dev/xvda'], vfs)).stdout).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  /tmp/abc\n' +
        '30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58  /dev/xvda\n',
    );
    expect((await sh(['md5sum', '-b', '/tmp/abc'], vfs)).stdout).toBe(
      '900150983cd24fb0d6963f7d28e17f72 */tmp/abc\n',
    );
  });

  it('escapes names with a backslash', async () => {
    const vfs = new MemoryVfs().addFile('/tmp/a\\b', 'abc');
    expect((await sh(['md5sum', '/tmp/a\\b'], vfs)).stdout).toBe(
      '\\900150983cd24fb0d6963f7d28e17f72  /tmp/a\\\\b\n',
    );
  });

  it('reports read and open errors per file and exits 1', async () => {
    const vfs = new MemoryVfs()
      .addBlockDevice('/dev/xvda', MiB, { read: failReadsCovering(300_000) })
      .addFile('/tmp/abc', 'abc');
    expect(await sh(['md5sum', '/dev/xvda'], vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: 'md5sum: /dev/xvda: Input/output error\n',
    });
    expect(await sh(['sha1sum', '/nope', '/tmp/abc'], vfs)).toEqual({
      status: 1,
      stdout: 'a9993e364706816aba3e25717850c26c9cd0d89d  /tmp/abc\n',
      stderr: 'sha1sum: /nope: No such file or directory\n',
    });
    expect(await sh(['md5sum', '/tmp'], vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: 'md5sum: /tmp: Is a directory\n',
    });
  });

  it('rejects unknown options, and stdin without a pipe', async () => {
    const vfs = new MemoryVfs();
    expect(await sh(['md5sum', '-x', '/dev/zero'], vfs)).toEqual({
      status: 1,
      stdout: '',
      stderr: "md5sum: invalid option -- 'x'\nTry `md5sum --help' for more information.\n",
    });
    expect((await sh(['md5sum'], vfs)).stderr).toBe(
      'md5sum: -: no standard input here (this guest has no terminal; use a pipe: … | cmd)\n',
    );
  });

  it('stops on Ctrl-C with status 130', async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await sh(['md5sum', '/dev/zero'], new MemoryVfs(), ac.signal)).status).toBe(130);
  });
});

describe('cmp', () => {
  const vfs = (): MemoryVfs =>
    new MemoryVfs()
      .addFile('/tmp/a', 'line1\nline2\n')
      .addFile('/tmp/b', 'line1\nlinE2\n')
      .addFile('/tmp/a2', 'line1\nline2\n')
      .addFile('/tmp/short', 'line1\n');

  it('is silent and exits 0 for identical files', async () => {
    expect(await sh(['cmp', '/tmp/a', '/tmp/a2'], vfs())).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  it('reports the first differing byte and its line', async () => {
    expect(await sh(['cmp', '/tmp/a', '/tmp/b'], vfs())).toEqual({
      status: 1,
      stdout: '/tmp/a /tmp/b differ: byte 10, line 2\n',
      stderr: '',
    });
    expect(await sh(['cmp', '-s', '/tmp/a', '/tmp/b'], vfs())).toEqual({ status: 1, stdout: '', stderr: '' });
  });

  it('reports EOF on the shorter file', async () => {
    expect(await sh(['cmp', '/tmp/a', '/tmp/short'], vfs())).toEqual({
      status: 1,
      stdout: '',
      stderr: 'cmp: EOF on /tmp/short\n',
    });
    expect((await sh(['cmp', '/tmp/short', '/tmp/a'], vfs())).stderr).toBe('cmp: EOF on /tmp/short\n');
  });

  it('-n LIMIT compares at most LIMIT bytes', async () => {
    expect((await sh(['cmp', '-n', '9', '/tmp/a', '/tmp/b'], vfs())).status).toBe(0);
    expect((await sh(['cmp', '-n10', '/tmp/a', '/tmp/b'], vfs())).status).toBe(1);
    expect((await sh(['cmp', '--bytes=6', '/tmp/a', '/tmp/short'], vfs())).status).toBe(0);
    expect(await sh(['cmp', '-n', 'x', '/tmp/a', '/tmp/b'], vfs())).toEqual({
      status: 2,
      stdout: '',
      stderr: "cmp: invalid --bytes value `x'\ncmp: Try `cmp --help' for more information.\n",
    });
  });

  it('counts bytes and lines across read chunks', async () => {
    const a = new Uint8Array(200_000).fill(0x0a);
    const b = a.slice();
    b[150_000] = 0x41;
    const v = new MemoryVfs().addFile('/tmp/x', a).addFile('/tmp/y', b);
    expect((await sh(['cmp', '/tmp/x', '/tmp/y'], v)).stdout).toBe(
      '/tmp/x /tmp/y differ: byte 150001, line 150001\n',
    );
  });

  it('compares a device with the image written to it', async () => {
    const img = new Uint8Array(4096).map((_, i) => i & 0xff);
    const v = new MemoryVfs().addFile('/root/img', img).addBlockDevice('/dev/xvda', 8192);
    expect((await sh(['dd', 'if=/root/img', 'of=/dev/xvda', 'status=none'], v)).status).toBe(0);
    expect(await sh(['cmp', '/root/img', '/dev/xvda'], v)).toEqual({
      status: 1,
      stdout: '',
      stderr: 'cmp: EOF on /root/img\n',
    });
    expect((await sh(['cmp', '-n', '4096', '/root/img', '/dev/xvda'], v)).status).toBe(0);
  });

  it('exits 2 on trouble', async () => {
    const v = vfs().addBlockDevice('/dev/xvda', 4096, { read: failReadsCovering(0) });
    expect(await sh(['cmp', '/nope', '/tmp/a'], v)).toEqual({
      status: 2,
      stdout: '',
      stderr: 'cmp: /nope: No such file or directory\n',
    });
    expect(await sh(['cmp', '/tmp/a', '/dev/xvda'], v)).toEqual({
      status: 2,
      stdout: '',
      stderr: 'cmp: /dev/xvda: Input/output error\n',
    });
    expect(await sh(['cmp'], v)).toEqual({
      status: 2,
      stdout: '',
      stderr: "cmp: missing operand after `cmp'\ncmp: Try `cmp --help' for more information.\n",
    });
    expect((await sh(['cmp', '-z', '/tmp/a', '/tmp/b'], v)).stderr).toBe(
      "cmp: invalid option -- 'z'\ncmp: Try `cmp --help' for more information.\n",
    );
  });
});

describe('cat', () => {
  it('concatenates files as latin1 and reports missing ones', async () => {
    const v = new MemoryVfs().addFile('/tmp/a', 'hello ').addFile('/tmp/b', 'w\xf6rld\n');
    expect(await sh(['cat', '/tmp/a', '/nope', '/tmp/b'], v)).toEqual({
      status: 1,
      stdout: 'hello w\xf6rld\n',
      stderr: 'cat: /nope: No such file or directory\n',
    });
  });

  it('reports a read error', async () => {
    const v = new MemoryVfs().addBlockDevice('/dev/xvda', 4096, { read: failReadsCovering(10) });
    expect(await sh(['cat', '/dev/xvda'], v)).toEqual({
      status: 1,
      stdout: '',
      stderr: 'cat: /dev/xvda: Input/output error\n',
    });
  });
});

describe('echo, true, false, sync', () => {
  it('joins its arguments', async () => {
    const v = new MemoryVfs();
    expect((await sh(['echo', 'a', 'b'], v)).stdout).toBe('a b\n');
    expect((await sh(['echo'], v)).stdout).toBe('\n');
    expect((await sh(['echo', '-n', 'a'], v)).stdout).toBe('a');
    expect((await sh(['echo', '-x', 'a'], v)).stdout).toBe('-x a\n');
    expect((await sh(['echo', '-e', 'a\\tb\\x41\\0101'], v)).stdout).toBe('a\tbAA\n');
    expect((await sh(['echo', '-ne', 'a\\n'], v)).stdout).toBe('a\n');
    expect((await sh(['echo', '-e', 'a\\cb'], v)).stdout).toBe('a');
    expect((await sh(['echo', 'a\\tb'], v)).stdout).toBe('a\\tb\n');
  });

  it('exit statuses', async () => {
    const v = new MemoryVfs();
    expect((await sh(['true'], v)).status).toBe(0);
    expect((await sh(['false'], v)).status).toBe(1);
    expect(await sh(['sync'], v)).toEqual({ status: 0, stdout: '', stderr: '' });
  });
});

describe('sleep', () => {
  it('sleeps and can be interrupted', async () => {
    const v = new MemoryVfs();
    expect((await sh(['sleep', '0.01'], v)).status).toBe(0);
    const ac = new AbortController();
    const pending = sh(['sleep', '1h'], v, ac.signal);
    setTimeout(() => ac.abort(), 10);
    expect((await pending).status).toBe(130);
  });

  it('rejects bad operands', async () => {
    const v = new MemoryVfs();
    expect(await sh(['sleep'], v)).toEqual({
      status: 1,
      stdout: '',
      stderr: "sleep: missing operand\nTry `sleep --help' for more information.\n",
    });
    expect((await sh(['sleep', '1x'], v)).stderr).toBe(
      "sleep: invalid time interval `1x'\nTry `sleep --help' for more information.\n",
    );
  });
});
