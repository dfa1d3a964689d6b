/**
 * `--disk` is never dropped in silence (issue 9 #8), across real `pvblk run` processes on one data
 * directory: a disk keeps the parameters scsi_debug fixes at module load, an explicit different value
 * is refused with both values and the way to reset, and the runtime-writable ones are applied.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { deriveGuestToken } from '@pvblk/runtime';
import { linesOf, pvblk, SECRETS, startProc, tempDir } from './helpers.ts';

const data = tempDir('pvblk-diskparams-');
afterAll(() => data.cleanup());
const run = (disk: string | null, cmd: string[]) =>
  pvblk([
    'run',
    '--data-dir',
    data.path,
    '--run-dir',
    `${data.path}/run`,
    ...(disk === null ? [] : ['--disk', disk]),
    '--',
    ...cmd,
  ]);

describe('pvblk run --disk on an existing disk', () => {
  it('creates the disk with the parameters given (the seed: dif=1 opts=34 fails at sector 4656)', async () => {
    const r = await run('dif=1 opts=34', ['dd', 'if=/dev/zero', 'of=/dev/xvda']);
    expect(r.code).toBe(1);
    expect(linesOf(r.stdout, 'guest')).toContain("dd: writing to `/dev/xvda': Input/output error");
  });

  it('refuses other load-time values, naming the stored and the requested ones and how to reset', async () => {
    const r = await run('dif=3 dev_size_mb=16', ['true']);
    expect(r.code).toBe(1);
    expect(linesOf(r.stdout, 'guest')).toContain(
      'pvblk: EEXIST: the host refused to create guest guest (HTTP 409): the disk of guest guest (/dev/sdg) has dev_size_mb=8 dif=1; asked for dev_size_mb=16 dif=3. ' +
        'dev_size_mb, dif are fixed when a disk is created (scsi_debug module parameters): keep them out of --disk, ' +
        'or delete the disk and its data to create it anew (`pvblk disks rm guest`, DELETE /disks?guest=guest, with the guest stopped)',
    );
    expect(r.stderr).toContain('pvblk: the stack did not start');
  });

  it('applies a runtime-writable change: opts=0 on the same disk, and dd runs to its end', async () => {
    const r = await run('dif=1 opts=0', ['dd', 'if=/dev/zero', 'of=/dev/xvda']);
    const guest = linesOf(r.stdout, 'guest');
    // coreutils dd at the end of a block device: ENOSPC after the last whole record, no I/O error
    expect(guest).toEqual(
      expect.arrayContaining([
        "dd: writing to `/dev/xvda': No space left on device",
        '16385+0 records in',
        '16384+0 records out',
      ]),
    );
    expect(guest.join('\n')).not.toContain('Input/output error');
  });

  it('keeps every parameter not given: without --disk, opts is still 0 and dif still 1', async () => {
    const r = await run(null, [
      'sh',
      '-c',
      'dd if=/dev/zero of=/dev/xvda bs=4096 count=2048 oflag=direct status=none && echo whole',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(linesOf(r.stdout, 'guest')).toEqual(['whole']);
    const again = await run('dif=0', ['true']);
    expect(linesOf(again.stdout, 'guest').join('\n')).toContain('has dif=1; asked for dif=0.');
  });
});

describe("the SCSI host number and the first disk name are the host's settings (issue 9 #11)", () => {
  it("PVBLK_SCSI_HOST=3 PVBLK_FIRST_DISK=sdb: the guest's disk is sdb on 3:0:0:0", async () => {
    const run = tempDir('pvblk-layout-');
    const hv = startProc('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
    const procs = [hv];
    try {
      const url = String((await hv.waitFor((r) => r.event === 'ready')).url);
      const host = startProc(
        'host',
        ['host', '--hypervisor', url, '--api-port', '0', '--memory', '--disk', 'dif=1'],
        {
          ...SECRETS,
          PVBLK_SCSI_HOST: '3',
          PVBLK_FIRST_DISK: 'sdb',
        },
      );
      procs.push(host);
      const api = String((await host.waitFor((r) => r.event === 'ready')).api);
      const g = startProc(
        'guest',
        [
          'domu',
          '--name',
          'guest',
          '--hypervisor',
          url,
          '--toolstack',
          api,
          '--control',
          join(run.path, 'g.sock'),
        ],
        { PVBLK_GUEST_TOKEN: deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest') },
      );
      procs.push(g);
      await g.waitFor((r) => r.event === 'ready');
      const res = await fetch(`${api}/guests`, {
        headers: { authorization: `Bearer ${SECRETS.PVBLK_TOOLSTACK_TOKEN}` },
      });
      const disks = ((await res.json()) as { disks: Array<{ path: string; hctl: string }> }).disks;
      expect(disks.map((d) => [d.path, d.hctl])).toEqual([['/dev/sdb', '3:0:0:0']]);
      const probe = await host.waitFor((r) => r.kmsg === true && String(r.msg).includes('Enabling DIF'));
      expect(probe.msg).toBe('sd 3:0:0:0 [sdb] Enabling DIF Type 1 protection');
    } finally {
      for (const p of procs.reverse()) await p.kill();
      run.cleanup();
    }
  });
});
