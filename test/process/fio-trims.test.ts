/**
 * The guest's fio trimming across real processes: each trim is a BLKDISCARD in the guest process, a
 * BLKIF_OP_DISCARD through the broker, and in the host process blkback's discard to a scsi_debug disk
 * with logical block provisioning (lbpws=1, WRITE SAME with UNMAP; lbprz=1: unmapped blocks read as
 * zeros) — so what the trims reached shows in what the guest reads back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem } from './helpers.ts';
import { sh } from './blkif-peers.ts';

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let guest: Awaited<ReturnType<System['guest']>>;

beforeAll(async () => {
  sys = await startSystem({ disk: 'delay=0 lbpws=1' });
  guest = await sys.guest('guest');
});

afterAll(async () => {
  await sys?.stop();
});

describe('fio trims in a guest process, discarded by the host process', () => {
  it('randtrim unmaps every block of its region: data written before reads back as zeros after', async () => {
    const zeros =
      'fio --filename=/dev/xvda --name=z --rw=read --bs=4k --size=64k --direct=1 --verify=pattern --verify_pattern=0';
    expect((await sh(guest.socket, 'dd if=/dev/urandom of=/dev/xvda bs=4k count=16 oflag=direct')).code).toBe(
      0,
    );
    const before = await sh(guest.socket, zeros);
    expect(before.code).toBe(1);
    expect(before.out).toContain('pattern: verify failed at file /dev/xvda offset 0');

    const trim = await sh(
      guest.socket,
      'fio --filename=/dev/xvda --name=t --rw=randtrim --bs=4k --size=64k --ioengine=libaio --iodepth=4 --output-format=json',
    );
    expect(trim.code).toBe(0);
    const j = (
      JSON.parse(trim.out.slice(trim.out.indexOf('{'))) as {
        jobs: Array<
          Record<'read' | 'write' | 'trim', { total_ios: number; io_bytes: number; slat_ns: { N: number } }>
        >;
      }
    ).jobs[0];
    expect([j.read.total_ios, j.write.total_ios, j.trim.total_ios]).toEqual([0, 0, 16]);
    expect(j.trim.io_bytes).toBe(65536);
    expect(j.trim.slat_ns.N).toBe(0);

    const after = await sh(guest.socket, zeros);
    expect(after.out).not.toContain('verify failed');
    expect(after.code).toBe(0);
  });
});
