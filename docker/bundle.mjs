// Bundles the pvblk CLI (docker/entry.mjs → src/cli/main.ts and the workspace packages) into one ESM
// file for the container image: `node docker/bundle.mjs [out file]` (default dist/docker/pvblk.mjs).
//
// esbuild is not a direct dependency: it comes with tsx (and vite), so it is resolved through them.
// Optional native accelerators stay external: msgpackr and ws fall back to their JavaScript code when
// `msgpackr-extract`, `bufferutil` and `utf-8-validate` cannot be loaded, as in the image. pino is
// bundled as it is used here: a synchronous destination, no transports (no worker threads).
import { createRequire } from 'node:module';
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'dist/docker/pvblk.mjs'));

async function loadEsbuild() {
  try {
    return await import('esbuild');
  } catch {
    for (const via of ['tsx', 'vite', 'vitest']) {
      try {
        const dir = realpathSync(join(root, 'node_modules', via));
        const path = createRequire(join(dir, 'package.json')).resolve('esbuild');
        return await import(path);
      } catch {
        // try the next one
      }
    }
  }
  throw new Error('esbuild not found (it is installed with tsx: run pnpm install first)');
}

const esbuild = await loadEsbuild();
const started = Date.now();
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: [join(root, 'docker/entry.mjs')],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
  external: ['bufferutil', 'utf-8-validate', 'msgpackr-extract', 'pino-pretty/*.node', '*.node'],
  // CommonJS dependencies (ws, pino, commander) call require() and read __dirname: give the ESM bundle both
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __pvblkCreateRequire } from 'node:module';",
      "import { fileURLToPath as __pvblkFileURLToPath } from 'node:url';",
      "import { dirname as __pvblkDirname } from 'node:path';",
      'const require = __pvblkCreateRequire(import.meta.url);',
      'const __filename = __pvblkFileURLToPath(import.meta.url);',
      'const __dirname = __pvblkDirname(__filename);',
    ].join('\n'),
  },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
process.stderr.write(
  `bundle: ${out} (${(bytes / 1024).toFixed(0)} KiB, ${Object.keys(result.metafile.inputs).length} inputs, ${Date.now() - started} ms)\n`,
);
