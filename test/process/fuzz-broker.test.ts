/**
 * The wire fuzzer against a real hypervisor process, a bounded number of frames per run (the
 * campaign in scripts/fuzz-campaign.ts sends hundreds of thousands): the hypervisor never goes down,
 * a victim guest is served throughout, and nothing is left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzBroker } from '../fuzz/broker-fuzzer.ts';
import { SECRETS, startProc, type Proc } from './helpers.ts';

let hv: Proc;
let url: string;
beforeAll(async () => {
  hv = startProc('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
  url = String((await hv.waitFor((r) => r.event === 'ready')).url);
});
afterAll(async () => {
  await hv?.kill('SIGTERM');
});

describe('fuzzing the hypervisor process with hostile frames', () => {
  it.each([1, 2])('seed %i: 3000 frames, strangers and an authenticated guest', async (seed) => {
    const r = await fuzzBroker({ url, dom0Secret: SECRETS.PVBLK_DOM0_SECRET, frames: 3000, seed });
    expect(r.framesSent).toBe(3000);
    expect(r.hypervisorDown).toBe(0);
    expect(r.victimFailures).toBe(0);
    expect(r.leaks).toEqual([]);
    expect(r.errorsAnswered).toBeGreaterThan(0); // the broker answered what it refused
    expect(hv.proc.exitCode).toBe(null);
  });
});
