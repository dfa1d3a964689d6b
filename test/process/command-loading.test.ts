import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PVBLK, tempDir } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOOK = fileURLToPath(new URL('./fixtures/module-log.mjs', import.meta.url));
/** The modules of src/cli that define commands (src/cli/commands.ts's table). */
const COMMAND_MODULES = ['up', 'run', 'guest', 'manage', 'hypervisor', 'host', 'domu', 'xl', 'xenstore']
  .concat(['driver-domain', 'bench', 'chaos'])
  .map((m) => `src/cli/${m}.ts`);

/** Runs `pvblk <args>` with every module it loads logged: its status, its output, the tree's files it loaded. */
function loading(
  dir: string,
  args: string[],
): Promise<{ code: number | null; out: string; files: string[] }> {
  const log = join(dir, `${args.join('_').replace(/[^a-z_-]/g, '')}.log`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', HOOK, PVBLK, ...args], {
      env: { ...process.env, PVBLK_TEST_MODULE_LOG: log },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const files = readFileSync(log, 'utf8')
        .split('\n')
        .filter((u) => u.startsWith(`file://${ROOT}`) && !u.includes('/node_modules/'))
        .map((u) => u.slice(`file://${ROOT}`.length));
      resolve({ code, out, files });
    });
  });
}

const under = (files: string[], dir: string) => files.filter((f) => f.startsWith(dir));

describe("pvblk loads a command's own modules only", () => {
  const tmp = tempDir('pvblk-loading-');
  afterAll(() => tmp.cleanup());

  it.each([
    ['hypervisor', 'packages/hypervisor/', ['packages/backend/', 'packages/frontend/']],
    ['host', 'packages/backend/', ['packages/hypervisor/', 'packages/frontend/']],
    ['domu', 'packages/frontend/', ['packages/hypervisor/', 'packages/backend/']],
  ])('`pvblk %s` loads %s and nothing of %j', async (command, own, others) => {
    const r = await loading(tmp.path, [command, '--help']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`Usage: pvblk ${command} `);
    expect(under(r.files, own).length).toBeGreaterThan(0);
    for (const dir of others) expect(under(r.files, dir)).toEqual([]);
    expect(r.files.filter((f) => COMMAND_MODULES.includes(f))).toEqual([`src/cli/${command}.ts`]);
  });

  it('`pvblk guest` loads the control socket client of the guest, not its kernel, Dom0 or the broker', async () => {
    const r = await loading(tmp.path, ['guest', '--help']);
    expect(r.code, r.out).toBe(0);
    expect(under(r.files, 'packages/frontend/').sort()).toEqual([
      'packages/frontend/src/control.ts',
      'packages/frontend/src/guest/vfs.ts',
    ]);
    for (const dir of ['packages/hypervisor/', 'packages/backend/', 'packages/client/'])
      expect(under(r.files, dir)).toEqual([]);
    expect(r.files.filter((f) => COMMAND_MODULES.includes(f))).toEqual(['src/cli/guest.ts']);
  });

  it('`pvblk up` and `run` check a disk as Dom0 will (its parameters, its partition) without loading Dom0', async () => {
    for (const command of ['up', 'run']) {
      const r = await loading(tmp.path, [command, '--help']);
      expect(r.code, r.out).toBe(0);
      expect(under(r.files, 'packages/backend/').sort()).toEqual([
        'packages/backend/src/partition.ts',
        'packages/backend/src/scsi/params.ts',
      ]);
      for (const dir of ['packages/hypervisor/', 'packages/client/']) expect(under(r.files, dir)).toEqual([]);
      // `run` talks to its guests through their control sockets, as `pvblk guest` does
      expect(under(r.files, 'packages/frontend/').sort()).toEqual(
        command === 'run' ? ['packages/frontend/src/control.ts', 'packages/frontend/src/guest/vfs.ts'] : [],
      );
    }
  });

  it('help, and a command name it does not know, load every command: all listed, the nearest suggested', async () => {
    const help = await loading(tmp.path, ['--help']);
    expect(help.code).toBe(0);
    expect(help.files.filter((f) => COMMAND_MODULES.includes(f)).sort()).toEqual([...COMMAND_MODULES].sort());
    for (const c of ['up', 'guest', 'hypervisor', 'dashboard', 'xenstore-watch', 'token', 'chaos'])
      expect(help.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    const typo = await loading(tmp.path, ['hypervisr']);
    expect(typo.code).toBe(2);
    expect(typo.out).toContain("pvblk: error: unknown command 'hypervisr'\n(Did you mean hypervisor?)");
  });
});
