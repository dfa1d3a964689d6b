/**
 * scsi_debug's TIMEOUT (opts=4 with every_nth) across real processes: the command the disk ignores
 * is aborted after sd's 30 s and retried, and the host's console shows the error handler's lines as
 * they happen — while the guest's dd is still waiting — not a silent half minute. The timeout is the
 * host disk's `/sys/block/sdX/device/timeout`, read and set through the host's API (operator only).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPvblk, stopAll, tempDir, type Running } from './helpers.ts';

const tmp = tempDir('pvblk-timeout-');
const started: Running[] = [];
afterEach(async () => {
  await stopAll(started, 'SIGINT');
  tmp.cleanup();
});

describe('a timed-out SCSI command', () => {
  // every_nth=30: of the 40 writes (and their retries) exactly the 30th command times out, once
  it('is aborted and retried with visible lines while the guest waits; the write then completes', async () => {
    const env = { TMPDIR: tmp.path };
    const runDir = join(tmp.path, 'run');
    const up = startPvblk(['up', '--memory', '--disk', 'opts=4 every_nth=30', '--run-dir', runDir], { env });
    started.push(up);
    await up.line((l) => l.includes('stops everything'));
    const access = JSON.parse(readFileSync(join(runDir, 'toolstack.json'), 'utf8')) as {
      api: string;
      token: string;
    };
    const timeout = async (method: string, token: string, body?: unknown) => {
      const r = await fetch(`${access.api}/disks/sdg/device/timeout`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    expect(await timeout('GET', access.token)).toEqual({
      status: 200,
      body: { disk: 'sdg', timeout: 30 },
    });
    const bad = await timeout('PUT', access.token, { value: '2s' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'EINVAL' });
    expect(String(bad.body.message)).toContain('/sys/block/sdg/device/timeout: "2s"');
    expect((await timeout('PUT', 'not-the-operator', { value: 1 })).status).toBe(401);
    // two seconds instead of thirty: the same error handling, sooner
    expect(await timeout('PUT', access.token, { value: '2' })).toEqual({
      status: 200,
      body: { disk: 'sdg', timeout: 2 },
    });
    await up.line((l) => l.includes('device/timeout 2 s (was 30 s)'));
    const dd = startPvblk(
      [
        'guest',
        '--run-dir',
        runDir,
        'dd',
        'if=/dev/zero',
        'of=/dev/xvda',
        'bs=4096',
        'count=40',
        'oflag=direct',
      ],
      { env },
    );
    started.push(dd);
    const abort = await up.line((l) => l.includes(' abort scheduled'), 20_000);
    expect(dd.proc.exitCode).toBeNull(); // the guest is still waiting for that write
    expect(abort).toMatch(
      /^host +\| \[\s*\d+\.\d{6}\] sd 9:0:0:0 \[sdg\] scmd ffff88003[0-9a-f]{7} abort scheduled$/,
    );
    const scmd = /scmd (\S+)/.exec(abort)![1];
    await up.line((l) => l.endsWith(`scmd ${scmd} aborting command ${scmd}`));
    await up.line((l) => l.endsWith(`scmd ${scmd} retry aborted command`));
    expect((await dd.exited).code).toBe(0);
    expect(dd.out.slice(0, 2)).toEqual(['40+0 records in', '40+0 records out']);
  });
});
