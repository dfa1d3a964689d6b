/**
 * The seed of the project (fixtures/seed-transcript.txt, the consoles of the 2013 talk): a guest `dd` of zeros onto a DIF disk with
 * scsi_debug's medium-error option fails at sector 4656 and the host logs the Medium Error at
 * Info fld=0x1234 — produced by the real mechanism (the page cache's read-modify-write of the 4 KiB block
 * holding LBA 0x1234), across real processes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { linesOf, normalise, pvblk, tempDir } from './helpers.ts';

/** The talk's two consoles, as `pvblk run` prints them: `guest | …` then `host  | …`. */
function talkTranscript(): string[] {
  const text = readFileSync(new URL('./fixtures/seed-transcript.txt', import.meta.url), 'utf8');
  const out: string[] = [];
  let who = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m = /^\[(guest|host)\]$/.exec(line);
    if (m) who = m[1];
    else out.push(`${who.padEnd(5)} | ${normalise(line)}`);
  }
  return out;
}

async function run(disk: string, cmd: string[]) {
  const dir = tempDir('pvblk-seed-');
  try {
    return await pvblk(['run', '--memory', '--run-dir', dir.path, '--disk', disk, '--', ...cmd]);
  } finally {
    dir.cleanup();
  }
}

describe('the seed transcript', () => {
  it('pvblk run --disk "dif=1 opts=34" -- dd if=/dev/zero of=/dev/xvda prints it line for line', async () => {
    const r = await run('dif=1 opts=34', ['dd', 'if=/dev/zero', 'of=/dev/xvda']);
    expect(r.code).toBe(1);
    // the guest block first, then the host block, as the talk showed the two consoles
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/^(\S+\s*\| )(.*)$/, (_, p, rest) => p + normalise(rest))),
    ).toEqual(talkTranscript());
    // the timestamps are dmesg-shaped
    expect(linesOf(r.stdout, 'host')[0]).toMatch(/^\[\s{0,4}\d+\.\d{6}\] Sense Key/);
  });

  it('moves with medium_error_start: the failing block is the one holding the new start', async () => {
    const r = await run('dif=1 opts=34 medium_error_start=8194', ['dd', 'if=/dev/zero', 'of=/dev/xvda']);
    expect(r.code).toBe(1);
    expect(linesOf(r.stdout, 'guest').map(normalise)).toEqual([
      '[  …] end_request: I/O error, dev xvda, sector 8192',
      "dd: writing to `/dev/xvda': Input/output error",
      '8193+0 records in',
      '8192+0 records out',
      '4194304 bytes (4.2 MB) copied, … s, … kB/s',
    ]);
    expect(linesOf(r.stdout, 'host').map(normalise)).toEqual([
      '[  …] Sense Key : Medium Error [current]',
      '[  …] Info fld=0x2000',
      '[  …] sd 9:0:0:0 [sdg]',
      '[  …] Add. Sense: Unrecovered read error',
      '[  …] sd 9:0:0:0 [sdg] CDB:',
      '[  …] Read(10): 28 20 00 00 20 00 00 00 08 00',
      '[  …] end_request: critical target error, dev sdg, sector 8192',
    ]);
  });

  it('without DIF the CDB carries no RDPROTECT bits', async () => {
    const r = await run('dif=0 opts=2', ['dd', 'if=/dev/zero', 'of=/dev/xvda']);
    expect(linesOf(r.stdout, 'host').map(normalise)).toContain(
      '[  …] Read(10): 28 00 00 00 12 30 00 00 08 00',
    );
  });

  it('oflag=direct writes pass: no read-modify-write, so no medium error; dd runs to the end of the disk', async () => {
    const r = await run('dif=1 opts=34 delay=0', [
      'dd',
      'if=/dev/zero',
      'of=/dev/xvda',
      'bs=4096',
      'oflag=direct',
    ]);
    expect(linesOf(r.stdout, 'guest').map(normalise)).toEqual([
      "dd: writing `/dev/xvda': No space left on device",
      '2049+0 records in',
      '2048+0 records out',
      '8388608 bytes (8.4 MB) copied, … s, … kB/s',
    ]);
    expect(linesOf(r.stdout, 'host')).toEqual([]);
    expect(r.code).toBe(1);
  });
});
