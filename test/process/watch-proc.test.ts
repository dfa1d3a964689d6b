import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startScript } from './helpers.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/log-then-exit.ts', import.meta.url));

// Node may report a child's 'exit' while its stdout is still open and unread (its docs for the event);
// a wait on a record gives up only at 'close', once the output has ended. Which comes first cannot be
// forced from here: these check what a wait does either side of the end of the output.
describe("the tests' process watcher", () => {
  it('finds the last record of a process that logged 500 KB and exited at once', async () => {
    const p = startScript('logger', FIXTURE, ['20000', 'lost the hypervisor: exiting']);
    const r = await p.waitFor((x) => String(x.msg).startsWith('lost the hypervisor'));
    expect(r.msg).toBe('lost the hypervisor: exiting');
    expect(await p.exited).toBe(1);
    expect(p.records.length).toBe(20_001);
  });

  it('fails a wait on a record the process never logged, once its output has ended', async () => {
    const p = startScript('logger', FIXTURE, ['100', 'done']);
    await expect(p.waitFor((x) => x.msg === 'never logged')).rejects.toThrow(
      'logger exited (1) while waited on',
    );
    // every record had been read when the wait gave up
    expect(p.records.length).toBe(101);
  });
});
