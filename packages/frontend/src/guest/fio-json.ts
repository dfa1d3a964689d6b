/**
 * fio's JSON as its json.c prints it, for the scripts that read it as text (`grep '"iops" : '`): two
 * spaces a level, `"key" : value`, every pair and element on a line of its own, an empty object as
 * `{`, an empty line, `}`. A number is printed as fio holds it: the fields fio adds as floats with
 * `%f` (six decimals, `"iops" : 1000.000000`), the others as integers. Which are which is stat.c's
 * (json_object_add_value_float); pvblk's own `pvblk` objects keep JavaScript's numbers. Strings are
 * escaped as JSON requires (json.c escapes only `"` and `\`, which can leave control characters of a
 * description in fio's output).
 */
import { fixed } from './printf.ts';

/** Keys whose numbers stat.c adds as floats, wherever they are (slat_ns.mean, jobs[].usr_cpu, …). */
const FLOAT_KEYS = new Set([
  'iops',
  'mean',
  'stddev',
  'bw_agg',
  'bw_mean',
  'bw_dev',
  'iops_mean',
  'iops_stddev',
  'usr_cpu',
  'sys_cpu',
  'latency_percentile',
  'util',
  'aggr_util',
]);

/** Objects every value of which stat.c adds as a float: the depth and latency distributions. */
const FLOAT_MAPS = new Set([
  'iodepth_level',
  'iodepth_submit',
  'iodepth_complete',
  'latency_ns',
  'latency_us',
  'latency_ms',
]);

/** The document (a JSON value) printed as fio prints its JSON, without a final new line. */
export function fioJsonText(doc: unknown): string {
  return print(doc, 0, 'int');
}

type NumberKind = 'int' | 'float' | 'js';

function print(v: unknown, level: number, kind: NumberKind): string {
  if (typeof v === 'number') return number(v, kind);
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  const pad = '  '.repeat(level + 1);
  const end = '  '.repeat(level);
  if (Array.isArray(v)) {
    const items = v.map((x) => pad + print(x, level + 1, kind === 'js' ? 'js' : 'int'));
    return `[\n${items.join(',\n')}\n${end}]`;
  }
  const pairs = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => {
      const inner: NumberKind =
        kind === 'js' || k === 'pvblk' ? 'js' : kind === 'float' || FLOAT_KEYS.has(k) ? 'float' : 'int';
      const child = FLOAT_MAPS.has(k) && kind !== 'js' ? 'float' : inner;
      return `${pad}${JSON.stringify(k)} : ${print(x, level + 1, child)}`;
    });
  return `{\n${pairs.join(',\n')}\n${end}}`;
}

function number(x: number, kind: NumberKind): string {
  if (!Number.isFinite(x)) return 'null';
  if (kind === 'float') return fixed(x, 6);
  // an integer field: fio's are 64-bit integers; a fraction here would be a bug, printed as it is
  return kind === 'int' && Number.isInteger(x) ? String(x) : JSON.stringify(x);
}
