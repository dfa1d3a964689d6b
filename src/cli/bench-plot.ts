/**
 * `pvblk bench --plot FILE.svg|FILE.png`: the figures drawn by a plotting library — Vega-Lite specs
 * compiled by vega-lite, rendered to SVG by vega's headless renderer, and rasterised to PNG by
 * @resvg/resvg-js. Nothing is drawn by hand.
 *
 *  - one run: the completion-latency CDF (pvblk's clat; the relay's round trip with --baseline) and,
 *    with --trace, the stage breakdown (mean and median per stage);
 *  - a sweep: IOPS and clat p50/p99 against the swept value (and the relay's with --baseline).
 *
 * The stage panel shows each stage's mean and median (µs); the tables of the report have p99 and max.
 *
 * The libraries are loaded only when a plot is asked for (they are large, and a packaged pvblk
 * without them still runs every other command).
 */
import { stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { blockSizes, rwBlockSize, Samples, tdMaxBs, tdMinBs } from '@pvblk/frontend';
import type { BenchOptions } from './bench-options.ts';
import { mergedLatency, pointLabel, pointSummary, type PointResult } from './bench-report.ts';

type Spec = Record<string, unknown>;

interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}
interface ResvgModule {
  Resvg: new (svg: string, opts: Record<string, unknown>) => { render(): { asPng(): Buffer } };
}

/** Imports a module by a name esbuild does not follow (the bundle stays without the plotting stack). */
async function load<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    throw new Error(`plotting needs ${name}, which is not installed here (${(e as Error).message})`);
  }
}

/** CDF points of a latency distribution, µs. */
function cdf(s: Samples, series: string): Array<Record<string, number | string>> {
  const out: Array<Record<string, number | string>> = [];
  let seen = 0;
  for (const [v, c] of s.bins()) {
    seen += c;
    out.push({ series, usec: Math.max(v, 1) / 1000, percentile: (100 * seen) / s.n });
  }
  return out;
}

function relayRtt(p: PointResult): Samples | null {
  if (!p.relay || p.relay.size === 0) return null;
  const s = new Samples();
  for (const r of p.relay.values()) s.merge(Samples.fromRaw(r.rtt));
  return s;
}

/** The job a plot is of, without what a sweep varies (the command line's value is not the points'). */
export function describeJob(o: BenchOptions): string {
  const j = o.cl.jobs[0];
  const swept = new Set<string>(o.sweeps.map((s) => s.key));
  const parts: Array<[string, string | null]> = [
    ['rw', j.rw],
    ['bs', `bs=${rwBlockSize(j) ?? `${tdMinBs(blockSizes(j))}-${tdMaxBs(blockSizes(j))}`}`],
    ['iodepth', `iodepth=${j.iodepth}`],
    ['numjobs', j.numjobs > 1 ? `numjobs=${j.numjobs}` : null],
  ];
  return parts
    .filter(([k, v]) => v !== null && !swept.has(k))
    .map(([, v]) => v)
    .join(' ');
}

export function singleSpec(p: PointResult, o: BenchOptions): Spec {
  const values = cdf(mergedLatency(p, 'clat'), 'pvblk clat (submitted → completion)');
  const rel = relayRtt(p);
  // the relay's round trip spans what lat does (issue → completion): both are set beside it
  if (rel)
    values.push(
      ...cdf(mergedLatency(p, 'lat'), 'pvblk lat (issue → completion)'),
      ...cdf(rel, 'relay round trip'),
    );
  const panels: Spec[] = [
    {
      title: `Latency CDF — ${describeJob(o)}`,
      width: 560,
      height: 300,
      data: { values },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'usec', type: 'quantitative', scale: { type: 'log' }, title: 'latency (µs, log scale)' },
        y: { field: 'percentile', type: 'quantitative', title: 'percentile', scale: { domain: [0, 100] } },
        color: {
          field: 'series',
          type: 'nominal',
          title: null,
          legend: { orient: 'bottom', labelLimit: 400 },
        },
      },
    },
  ];
  const st = p.stages;
  if (st && !('error' in st)) {
    const rows = st.stages.flatMap((s, i) => [
      { stage: `${String(i + 1).padStart(2, '0')} ${s.name}`, stat: 'mean', usec: s.ns.mean / 1000 },
      { stage: `${String(i + 1).padStart(2, '0')} ${s.name}`, stat: 'p50', usec: s.ns.pct(50) / 1000 },
    ]);
    panels.push({
      title: `Stage breakdown (${st.requests} requests; clocks aligned to the hypervisor's, NTP-style)`,
      width: 560,
      height: { step: 14 },
      data: { values: rows },
      mark: 'bar',
      encoding: {
        y: { field: 'stage', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
        yOffset: { field: 'stat' },
        x: { field: 'usec', type: 'quantitative', title: 'µs' },
        color: { field: 'stat', type: 'nominal', title: null, legend: { orient: 'bottom' } },
      },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    vconcat: panels,
    config: { font: 'DejaVu Sans' },
  };
}

export function sweepSpec(points: PointResult[], o: BenchOptions): Spec {
  const keys = o.sweeps.map((s) => s.key).join(', ');
  const iops: Array<Record<string, number | string>> = [];
  const lat: Array<Record<string, number | string>> = [];
  for (const p of points) {
    const s = pointSummary(p);
    const x = pointLabel(p);
    iops.push({ point: x, series: 'pvblk', iops: s.iops });
    if (s.relayIops !== null) iops.push({ point: x, series: 'relay', iops: s.relayIops });
    lat.push({ point: x, series: 'pvblk clat p50', usec: s.clatP50 / 1000 });
    lat.push({ point: x, series: 'pvblk clat p99', usec: s.clatP99 / 1000 });
    lat.push({ point: x, series: 'pvblk lat p50', usec: s.latP50 / 1000 });
    if (s.relayP50 !== null) lat.push({ point: x, series: 'relay RTT p50', usec: s.relayP50 / 1000 });
  }
  const order = points.map(pointLabel);
  const x = {
    field: 'point',
    type: 'ordinal',
    sort: order,
    title: keys,
    axis: { labelAngle: -30, labelLimit: 400 },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    vconcat: [
      {
        title: `IOPS against ${keys} — ${describeJob(o)}`,
        width: 560,
        height: 260,
        data: { values: iops },
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: { field: 'iops', type: 'quantitative', title: 'IOPS' },
          color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
        },
      },
      {
        title: `Latency against ${keys}`,
        width: 560,
        height: 260,
        data: { values: lat },
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: { field: 'usec', type: 'quantitative', scale: { type: 'log' }, title: 'µs (log scale)' },
          color: {
            field: 'series',
            type: 'nominal',
            title: null,
            legend: { orient: 'bottom', labelLimit: 400 },
          },
        },
      },
    ],
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    config: { font: 'DejaVu Sans' },
  };
}

/** Renders a Vega-Lite spec to SVG, and to PNG when the file name says so. */
export async function renderSpec(spec: Spec, png: boolean): Promise<Buffer> {
  const vl = await load<VegaLiteModule>('vega-lite');
  const vega = await load<VegaModule>('vega');
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  if (!png) return Buffer.from(svg);
  const { Resvg } = await load<ResvgModule>('@resvg/resvg-js');
  return new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
}

/**
 * Loads the plotting libraries and checks that `file` can be written, before a run: the plot is
 * written after the whole run (a sweep's too), and a missing library or a directory that is not
 * there had lost it at the end.
 */
export async function checkPlotting(file: string): Promise<void> {
  await load<VegaLiteModule>('vega-lite');
  await load<VegaModule>('vega');
  if (/\.png$/i.test(file)) await load<ResvgModule>('@resvg/resvg-js');
  const dir = dirname(resolve(file));
  const d = await stat(dir).catch(() => null);
  if (!d) throw new Error(`${dir}: no such directory`);
  if (!d.isDirectory()) throw new Error(`${dir} is not a directory`);
  // a file made there and removed: permission bits say nothing for root, nor for /proc or a read-only mount
  const probe = join(dir, `.pvblk-plot-${process.pid}`);
  try {
    await writeFile(probe, '', { flag: 'wx' });
  } catch (e) {
    throw new Error(`cannot create a file in ${dir} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  await unlink(probe);
  const f = await stat(file).catch(() => null);
  if (f && !f.isFile()) throw new Error(`${file} exists and is not a regular file`);
}

export async function writePlot(file: string, points: PointResult[], o: BenchOptions): Promise<void> {
  const spec = points.length > 1 ? sweepSpec(points, o) : singleSpec(points[0], o);
  await writeFile(file, await renderSpec(spec, /\.png$/i.test(file)));
}
