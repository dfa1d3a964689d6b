/**
 * The guest's fio under a faulty disk, across real processes: a dm-dust layer set up through the
 * host's management API fails chosen blocks, blkback answers BLKIF_RSP_ERROR, and the guest's fio
 * either stops at the first (fio's default) or, with continue_on_error, counts each and goes on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRETS, startSystem } from './helpers.ts';
import { sh } from './blkif-peers.ts';

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let guest: Awaited<ReturnType<System['guest']>>;

async function dm(path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL(path, sys.api), {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${SECRETS.PVBLK_TOOLSTACK_TOKEN}`,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  sys = await startSystem({ disk: 'delay=0' });
  guest = await sys.guest('guest');
});

afterAll(async () => {
  await sys?.stop();
});

describe('fio in a guest process over dm-dust in the host process', () => {
  it('stops at the first bad block by default, and counts them all with continue_on_error=read', async () => {
    const layers = (await dm('/dm')).body as { disks: Array<{ disk: string; sectors: number }> };
    const sdg = layers.disks.find((d) => d.disk === 'sdg')!;
    expect(
      (await dm('/dm/sdg', { name: 'dust1', table: `0 ${sdg.sectors} dust /dev/sdg 0 4096` })).status,
    ).toBe(201);
    for (const message of ['addbadblock 5', 'addbadblock 9', 'enable'])
      expect((await dm('/dm/sdg/dust1/message', { message })).status).toBe(200);

    const job = '--filename=/dev/xvda --name=c --rw=read --bs=4k --size=256k --direct=1';
    const stopped = await sh(guest.socket, `fio ${job}`);
    expect(stopped.code).toBe(1);
    expect(stopped.out).toContain(
      'fio: io_u error on file /dev/xvda: Input/output error: read offset=20480, buflen=4096\n',
    );
    expect(stopped.out).toMatch(/^fio: pid=\d+, err=5\/file:io_u\.c:1896, func=io_u error/m);

    const counted = await sh(guest.socket, `fio ${job} --continue_on_error=read --output-format=json`);
    expect(counted.code).toBe(0);
    const j = (
      JSON.parse(counted.out.slice(counted.out.indexOf('{'))) as {
        jobs: Array<{
          error: number;
          total_err: number;
          first_error: number;
          read: { total_ios: number; io_bytes: number };
        }>;
      }
    ).jobs[0];
    // the pass issues all 64 blocks; the two bad ones fail and are not made up
    expect([j.error, j.total_err, j.first_error, j.read.total_ios, j.read.io_bytes]).toEqual([
      5,
      2,
      5,
      64,
      62 * 4096,
    ]);
  });
});
