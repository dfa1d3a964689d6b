/**
 * `pvblk run` across real processes: hypervisor, host and guest(s) started by the CLI, a guest command
 * run through the control socket, the consoles printed with name prefixes.
 */
import { describe, expect, it } from 'vitest';
import { linesOf, normalise, pvblk, tempDir } from './helpers.ts';

/** `pvblk run` with its own run dir, removed afterwards. */
async function RUN(extra: string[], cmd: string[]) {
  const run = tempDir('pvblk-t-');
  try {
    return await pvblk(['run', '--memory', '--run-dir', run.path, ...extra, '--', ...cmd]);
  } finally {
    run.cleanup();
  }
}

describe('pvblk run', () => {
  it("prints dd's coreutils output line by line and exits with its status", async () => {
    const r = await RUN([], ['dd', 'if=/dev/zero', 'of=/dev/xvda', 'bs=4096', 'count=16']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(linesOf(r.stdout, 'guest').map(normalise)).toEqual([
      '16+0 records in',
      '16+0 records out',
      '65536 bytes (66 kB) copied, … s, … kB/s',
    ]);
    expect(linesOf(r.stdout, 'host')).toEqual([]);
  });

  it('runs the default demo: writes, reads back and verifies', async () => {
    const r = await RUN([], []);
    expect(r.code).toBe(0);
    const g = linesOf(r.stdout, 'guest');
    expect(g[0]).toBe('+ dd if=/dev/urandom of=/tmp/demo.in bs=4096 count=256');
    expect(g.at(-1)).toBe(
      'demo: 1048576 random bytes written to /dev/xvda with O_DIRECT, read back and verified identical',
    );
  });

  it("exits with the guest command's failure status and message", async () => {
    const r = await RUN([], ['dd', 'if=/dev/nonexistent', 'of=/dev/null']);
    expect(r.code).toBe(1);
    expect(linesOf(r.stdout, 'guest')).toEqual(["dd: opening `/dev/nonexistent': No such file or directory"]);
  });

  it('rejects unknown options and bad values with a clear message', async () => {
    // usage errors exit 2, whether commander finds them or a check after it (a bad --disk)
    const a = await pvblk(['run', '--frobnicate']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("unknown option '--frobnicate'");
    const b = await pvblk(['run', '--guests', 'many']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--guests must be an integer 1-\d+ \(got "many"\)/);
    const c = await pvblk(['run', '--memory', '--disk', 'dif=7', '--', 'true']);
    expect(c.code).toBe(2);
    expect(c.stdout + c.stderr).toContain('disk parameter "dif": must be 0, 1, 2 or 3 (got 7)');
  });

  it('refuses a bad value from the environment as it refuses the option, naming the variable', async () => {
    // a hypervisor that took PVBLK_MAX_DOMAINS=abc ran with no domain limit at all (NaN)
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['hypervisor'], { PVBLK_MAX_DOMAINS: 'abc' }, `value 'abc' from env 'PVBLK_MAX_DOMAINS' is invalid`],
      [['hypervisor'], { PVBLK_MAX_DOMAINS: '1' }, '--max-domains must be between 2 and 32752 (got 1)'],
      [['hypervisor'], { PVBLK_HYPERVISOR_PORT: '7480x' }, `from env 'PVBLK_HYPERVISOR_PORT' is invalid`],
      [['host'], { PVBLK_API_PORT: '65536' }, '--api-port must be between 0 and 65535 (got 65536)'],
      [['host'], { PVBLK_DATA_PATH: 'bogus' }, `value 'bogus' from env 'PVBLK_DATA_PATH' is invalid`],
      [['host'], { PVBLK_PARTITION_START: '-8' }, `from env 'PVBLK_PARTITION_START' is invalid`],
      // a URL is checked as it is parsed: `--toolstack notaurl` was retried for 60 s as unreachable,
      // and `--hypervisor 'ws://[::1'` had the guest's domain created, then left paused
      [
        ['host'],
        { PVBLK_HYPERVISOR_URL: 'http://x/' },
        '--hypervisor must be a URL (ws:// or wss://) (got "http://x/")',
      ],
      [
        ['domu'],
        { PVBLK_TOOLSTACK_URL: 'notaurl' },
        '--toolstack must be a URL (http:// or https://) (got "notaurl")',
      ],
      [
        ['domu', '--hypervisor', 'ws://[::1'],
        {},
        '--hypervisor must be a URL (ws:// or wss://) (got "ws://[::1")',
      ],
      // the name makes a path in the run dir
      [['guest', '--name', '../../etc', 'true'], {}, 'bad guest name "../../etc"'],
    ];
    for (const [args, env, message] of cases) {
      const r = await pvblk(args, { env: { PVBLK_DOM0_SECRET: 'process-test-dom0-secret', ...env } });
      expect(r.code, JSON.stringify([args, env])).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it('names the address it cannot listen on, without a port the system was to pick', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): on no machine's interfaces
    const r = await pvblk(['hypervisor', '--host', '192.0.2.1', '--port', '0'], {
      env: { PVBLK_DOM0_SECRET: 'process-test-dom0-secret' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('pvblk: listen 192.0.2.1: address not available on this machine\n');
  });

  it("starts its processes with PVBLK_NODE_FLAGS in place of pvblk's own V8 flags, and refuses a bad one", async () => {
    const run = tempDir('pvblk-t-');
    try {
      // --trace-gc in place of the default flags: each process's young collections show in its console
      const r = await pvblk(['run', '--memory', '--run-dir', run.path, '--', 'true'], {
        env: { PVBLK_NODE_FLAGS: '--trace-gc' },
      });
      expect(r.code).toBe(0);
      for (const name of ['hypervisor', 'host', 'guest'])
        expect(r.stdout + r.stderr).toMatch(new RegExp(`^${name} +\\| .*Scavenge`, 'm'));
      const bad = await pvblk(['run', '--memory', '--run-dir', run.path, '--', 'true'], {
        env: { PVBLK_NODE_FLAGS: '--trace-gc  -e' },
      });
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('PVBLK_NODE_FLAGS: "-e" is not a node option (--name or --name=value)');
      expect(bad.stdout + bad.stderr).not.toMatch(/^hypervisor +\|/m);
    } finally {
      run.cleanup();
    }
  });

  it('shows --help for every command', async () => {
    for (const cmd of [[], ['up'], ['run'], ['guest'], ['hypervisor'], ['host'], ['domu']]) {
      const r = await pvblk([...cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: pvblk/);
    }
  });
});

/** Writes random data, reads it back, compares; flushes; discards and checks the range reads as zeros. */
const ROUND_TRIP = [
  'dd if=/dev/urandom of=/tmp/a bs=65536 count=8 status=none',
  'dd if=/tmp/a of=/dev/xvda bs=65536 seek=4 oflag=direct conv=fsync status=none',
  'dd if=/dev/xvda of=/tmp/b bs=65536 skip=4 count=8 iflag=direct status=none',
  'cmp /tmp/a /tmp/b',
  'dd if=/tmp/a of=/dev/xvda bs=512 seek=7 count=9 status=none',
  'sync',
  'dd if=/dev/xvda of=/tmp/c bs=512 skip=7 count=9 iflag=direct status=none',
  'cmp -n 4608 /tmp/a /tmp/c',
  'blkdiscard -o 262144 -l 131072 /dev/xvda',
  'dd if=/dev/xvda of=/tmp/z bs=131072 skip=2 count=1 iflag=direct status=none',
  'cmp -n 131072 /tmp/z /dev/zero',
  'echo round-trip-ok',
].join(' && ');

describe('read, write, flush and discard round trips across three processes', () => {
  it.each([
    { name: '1-page ring, indirect, persistent grants, grant map', args: [] },
    {
      name: '16-page ring, no indirect, no persistent grants, grant map',
      args: ['--ring-page-order', '4', '--indirect-segments', '0', '--no-persistent'],
    },
    {
      name: '16-page ring, indirect, grant copy',
      args: ['--ring-page-order', '4', '--data-path', 'copy', '--no-persistent'],
    },
    { name: 'two queues, indirect 256', args: ['--queues', '2', '--indirect-segments', '256'] },
  ])('$name', async ({ args }) => {
    const r = await RUN(['--disk', 'lbpws=1', ...args], ['sh', '-c', ROUND_TRIP]);
    expect(linesOf(r.stdout, 'guest')).toEqual(['round-trip-ok']);
    expect(r.code).toBe(0);
  });

  it('two guests at once, each on its own disk', async () => {
    const r = await RUN(['--guests', '2'], ['demo']);
    expect(r.code).toBe(0);
    for (const g of ['guest1', 'guest2']) {
      expect(linesOf(r.stdout, g).at(-1)).toBe(
        'demo: 1048576 random bytes written to /dev/xvda with O_DIRECT, read back and verified identical',
      );
    }
  });

  it('crosses the 2^32 ring index wrap in a live run', async () => {
    const script = [
      'dd if=/dev/urandom of=/tmp/a bs=4096 count=384 status=none',
      'dd if=/tmp/a of=/dev/xvda bs=4096 oflag=direct status=none',
      'dd if=/dev/xvda of=/tmp/b bs=4096 count=384 iflag=direct status=none',
      'cmp /tmp/a /tmp/b && echo wrapped-ok',
    ].join(' && ');
    // 768 requests starting 256 below 2^32
    const r = await RUN(['--ring-start-index', String(0xffffff00)], ['sh', '-c', script]);
    expect(linesOf(r.stdout, 'guest')).toEqual(['wrapped-ok']);
  });
});
