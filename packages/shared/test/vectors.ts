// Loads the golden vectors kept in ./fixtures (produced by Xen's own ring.h/blkif.h macros compiled
// with gcc on x86_64, and PI tuples computed independently; see fixtures/README.md).
import { readFileSync } from 'node:fs';

export function loadVectors<T = unknown>(name: string): T {
  const url = new URL(`./fixtures/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as T;
}

export function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}
