// A module loader hook chained in front of tsx's (bin/register.mjs). tsx compiles with esbuild's
// keepNames, which wraps every function whose name a bundler might change in a helper that sets the
// name with Object.defineProperty(fn, 'name', …) — for a closure, every time the closure is created,
// and on a slow path of V8's (the function's map changes). Named closures are made on every I/O
// (promise callbacks, EOI and completion handlers: four per 4 KiB write in blkfront, blkback and the
// hypercall client alone, more in the block layer, fio and the SCSI layer): 4 KiB writes at QD1 on one
// core made 4-11 % more IOPS without it (docs/performance.md, item 11). tsx compiles one file at a time and renames
// nothing, so here the helper guards against nothing. Made the identity, it leaves function
// declarations, classes and methods their own names; an arrow function assigned to a constant, which
// esbuild wrapped in the helper's call, is anonymous (a stack trace still gives its file and line).
// The container image's bundle is built without keepNames too (docker/bundle.mjs).
//
// The helper is esbuild's exact text; when a tsx or esbuild upgrade changes it, the source passes
// through unchanged and test/process/loader.test.ts fails.
export const NAME_HELPER = 'var __name=(target,value)=>__defProp(target,"name",{value,configurable:true});';
// padded to the helper's length: tsx's output is one line, and its source map counts columns
const IDENTITY = 'var __name=(target)=>target;'.padEnd(NAME_HELPER.length, ' ');

/** tsx's output for one of our modules with the name helper made the identity. */
export function withoutNameHelper(source) {
  return source.replace(NAME_HELPER, IDENTITY);
}

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.startsWith('file:') || result.source == null) return result;
  const path = new URL(url).pathname;
  // our TypeScript only: what tsx compiled from node_modules (if anything) is left as it came
  if (path.includes('/node_modules/') || !/\.[cm]?ts$/.test(path)) return result;
  const text =
    typeof result.source === 'string' ? result.source : Buffer.from(result.source).toString('utf8');
  return { ...result, source: withoutNameHelper(text) };
}
