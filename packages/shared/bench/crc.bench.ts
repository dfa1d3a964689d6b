/**
 * Throughput of the PI guard functions and of PI generate/verify. A script, not a test: timings
 * depend on the machine, so it prints a table and records JSON instead of asserting.
 *
 *   node --import tsx packages/shared/bench/crc.bench.ts
 *
 * The baseline is the textbook one-table, byte-at-a-time CRC written out here, because "how much
 * does slicing buy" is the question the slicing-by-16 implementation has to answer; the same
 * slicing-by-16 step and the Internet checksum's 32-bit-chunk sum run as JavaScript (what crc.ts ran
 * before both loops moved to WebAssembly) are written out too, for "how much does WebAssembly buy";
 * the bitwise reference is shown as the floor. Each case is warmed up (so V8 has optimised it), then timed over
 * several rounds, and the median round is reported so one scheduling hiccup does not move it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { crc16T10Dif, crc16T10DifBitwise, ipChecksum } from '../src/crc.ts';
import { generatePi, piBytesFor, verifyPi, type PiFormat } from '../src/pi.ts';
import { xorshiftBytes } from '../test/xorshift.ts';

const ROUNDS = 9;
const WARMUP_MS = 200;
/** Bytes hashed per timed round: enough for a round to last tens of milliseconds. */
const ROUND_BYTES = 32 * 1024 * 1024;
/** The bitwise reference is ~5x slower than the baseline; a smaller round keeps the run short. */
const SLOW_ROUND_BYTES = 4 * 1024 * 1024;
const SIZES = [512, 4096, 1024 * 1024];

const ONE_TABLE = buildOneTable();

function buildOneTable(): Uint16Array {
  const t = new Uint16Array(256);
  for (let b = 0; b < 256; b++) t[b] = crc16T10DifBitwise(Uint8Array.of(b));
  return t;
}

/** The baseline: one 256-entry table, one dependent lookup per byte. */
function crc16OneTable(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ ONE_TABLE[(crc >>> 8) ^ data[i]];
  return crc;
}

/** The slicing-by-16 tables, from the one-table CRC (see crc.ts for why they work). */
const SLICE_TABLES = Array.from({ length: 16 }, (_, k) =>
  Uint16Array.from({ length: 256 }, (_, b) => crc16OneTable(Uint8Array.of(b, ...new Uint8Array(k)))),
);
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15] = SLICE_TABLES;

/** Slicing-by-16 as JavaScript: 16 independent table loads per 16 bytes. */
function crc16SlicingJs(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  let i = start;
  const stepEnd = start + ((end - start) & ~15);
  while (i < stepEnd) {
    crc =
      T15[data[i] ^ (crc >>> 8)] ^
      T14[data[i + 1] ^ (crc & 0xff)] ^
      T13[data[i + 2]] ^
      T12[data[i + 3]] ^
      T11[data[i + 4]] ^
      T10[data[i + 5]] ^
      T9[data[i + 6]] ^
      T8[data[i + 7]] ^
      T7[data[i + 8]] ^
      T6[data[i + 9]] ^
      T5[data[i + 10]] ^
      T4[data[i + 11]] ^
      T3[data[i + 12]] ^
      T2[data[i + 13]] ^
      T1[data[i + 14]] ^
      T0[data[i + 15]];
    i += 16;
  }
  for (; i < end; i++) crc = ((crc << 8) & 0xffff) ^ T0[(crc >>> 8) ^ data[i]];
  return crc;
}

/** The Internet checksum as JavaScript: big-endian 32-bit chunks summed into a double, folded at the end. */
function ipChecksumJs(data: Uint8Array, start = 0, end = data.length): number {
  let sum = 0;
  let i = start;
  const chunkEnd = start + ((end - start) & ~3);
  for (; i < chunkEnd; i += 4) {
    sum += ((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]) >>> 0;
  }
  if (i + 1 < end) {
    sum += (data[i] << 8) | data[i + 1];
    i += 2;
  }
  if (i < end) sum += data[i] << 8;
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

interface Row {
  name: string;
  bytes: number;
  mbPerSec: number;
  ratioVsOneTable: number | null;
  rounds: number[];
}

/** Folded into the output so V8 cannot prove the benchmarked calls dead. */
let sink = 0;

/** Median MB/s of `op`, which processes `bytesPerCall` bytes per call. */
function measure(
  op: () => number,
  bytesPerCall: number,
  roundBytes: number,
): { median: number; rounds: number[] } {
  const callsPerRound = Math.max(1, Math.round(roundBytes / bytesPerCall));
  // Check the clock about every 64 KiB of work so warm-up of a slow 1 MiB case stays ~WARMUP_MS.
  const callsPerCheck = Math.max(1, Math.round(65536 / bytesPerCall));
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) for (let k = 0; k < callsPerCheck; k++) sink ^= op();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let k = 0; k < callsPerRound; k++) sink ^= op();
    const seconds = (performance.now() - t0) / 1000;
    rounds.push((callsPerRound * bytesPerCall) / 1e6 / seconds);
  }
  const sorted = [...rounds].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], rounds };
}

const rows: Row[] = [];

for (const size of SIZES) {
  const buf = xorshiftBytes(size, size);
  const cases: [string, () => number, number][] = [
    ['crc16T10Dif (slicing-by-16, WebAssembly)', () => crc16T10Dif(buf), ROUND_BYTES],
    ['crc16 one-table (baseline)', () => crc16OneTable(buf), ROUND_BYTES],
    ['crc16 slicing-by-16 in JavaScript', () => crc16SlicingJs(buf), ROUND_BYTES],
    ['crc16T10DifBitwise', () => crc16T10DifBitwise(buf), SLOW_ROUND_BYTES],
    ['ipChecksum (WebAssembly)', () => ipChecksum(buf), ROUND_BYTES],
    ['ipChecksum in JavaScript', () => ipChecksumJs(buf), ROUND_BYTES],
  ];
  const measured = cases.map(([name, op, roundBytes]) => ({ name, ...measure(op, size, roundBytes) }));
  const baseline = measured[1].median;
  for (const m of measured) {
    rows.push({
      name: m.name,
      bytes: size,
      mbPerSec: m.median,
      ratioVsOneTable: m.median / baseline,
      rounds: m.rounds,
    });
  }
}

// One 4 KiB block = 8 protection intervals of 512 bytes, the common guest I/O unit.
const BLOCK = 4096;
const block = xorshiftBytes(BLOCK, 0x5eed);
for (const guard of ['crc', 'ip'] as const) {
  const format: PiFormat = { type: 1, guard, interval: 512 };
  const pi = new Uint8Array(piBytesFor(BLOCK, format.interval));
  generatePi(block, pi, { format, seed: 4656 });
  const gen = measure(
    () => {
      generatePi(block, pi, { format, seed: 4656 });
      return pi[0];
    },
    BLOCK,
    ROUND_BYTES,
  );
  const ver = measure(
    () => (verifyPi(block, pi, { format, seed: 4656 }) === null ? 1 : 0),
    BLOCK,
    ROUND_BYTES,
  );
  rows.push({
    name: `generatePi 4K type1 ${guard}`,
    bytes: BLOCK,
    mbPerSec: gen.median,
    ratioVsOneTable: null,
    rounds: gen.rounds,
  });
  rows.push({
    name: `verifyPi 4K type1 ${guard}`,
    bytes: BLOCK,
    mbPerSec: ver.median,
    ratioVsOneTable: null,
    rounds: ver.rounds,
  });
}

const sizeLabel = (n: number): string =>
  n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
console.log(`${'case'.padEnd(42)} ${'size'.padStart(8)} ${'MB/s'.padStart(9)} ${'vs 1-table'.padStart(11)}`);
for (const r of rows) {
  const ratio = r.ratioVsOneTable === null ? '' : `${r.ratioVsOneTable.toFixed(2)}x`;
  console.log(
    `${r.name.padEnd(42)} ${sizeLabel(r.bytes).padStart(8)} ${r.mbPerSec.toFixed(0).padStart(9)} ${ratio.padStart(11)}`,
  );
}
for (const r of rows.filter((x) => x.name.startsWith('verifyPi') || x.name.startsWith('generatePi'))) {
  console.log(`${r.name}: ${((r.mbPerSec * 1e6) / BLOCK / 1000).toFixed(0)}k blocks/s`);
}

// Results live at the repository root's bench/results/ (git-ignored), wherever the script is run from.
const outDir = new URL('../../../bench/results/', import.meta.url);
mkdirSync(outDir, { recursive: true });
const outFile = new URL('crc.json', outDir);
const report = {
  bench: 'crc',
  date: new Date().toISOString(),
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpu: cpus()[0]?.model ?? 'unknown',
  rounds: ROUNDS,
  warmupMs: WARMUP_MS,
  unit: 'MB/s (1e6 bytes per second), median of rounds',
  results: rows,
  sink,
};
writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
console.log(`wrote ${outFile.pathname}`);
