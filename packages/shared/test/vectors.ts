// Loads the golden vectors that live beside the repository (../shared/vectors), produced by Xen's
// own ring.h/blkif.h macros compiled with gcc on x86_64.
import { readFileSync } from 'node:fs';

export function loadVectors<T = unknown>(name: string): T {
  const url = new URL(`../../../../shared/vectors/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as T;
}

export function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}
