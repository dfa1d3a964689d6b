import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const probe = join(root, 'test/process/fixtures/names-probe.ts');

function run(importer: string): Record<string, string> {
  const out = execFileSync(process.execPath, ['--import', importer, probe], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out) as Record<string, string>;
}

describe("pvblk's module loader (bin/register.mjs)", () => {
  it("runs tsx's output without the keepNames helper, keeping declared names and source positions", () => {
    const ours = run('./bin/register.mjs');
    const tsx = run('tsx');
    // plain tsx sets every name with Object.defineProperty as the closure is created …
    expect(tsx).toMatchObject({ arrow: 'probe', closure: 'inner' });
    // … the processes' loader does not (if this fails after a tsx or esbuild upgrade, the helper's
    // text changed: update NAME_HELPER in bin/names-hook.mjs)
    expect(ours).toMatchObject({ arrow: '', closure: '' });
    // names that are the function's own are the same under both
    for (const o of [ours, tsx]) expect(o).toMatchObject({ declared: 'declared', cls: 'Named', method: 'm' });
    // the helper's replacement keeps tsx's one-line output the same length: the source map still holds
    expect(ours.where).toBe(tsx.where);
    expect(ours.where).toMatch(/names-probe\.ts:17:\d+$/);
  });
});
