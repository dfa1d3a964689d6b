import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { nodeReplaceFileSystem, replaceFile, type ReplaceFileSystem } from '../src/replace-file.ts';

/** What was done to each file handle node:fs/promises opened in this file's tests, in order. */
const handleOps = vi.hoisted(() => [] as string[]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (path, flags, mode) => {
    const fh = await real.open(path, flags, mode);
    const name = String(path).split('/').pop();
    handleOps.push(`open ${name} ${String(flags)}`);
    const wrap =
      <K extends 'writeFile' | 'sync' | 'close'>(k: K) =>
      (...a: unknown[]) => {
        handleOps.push(`${k} ${name}`);
        return (fh[k] as (...x: unknown[]) => Promise<void>).apply(fh, a);
      };
    return Object.assign(Object.create(fh) as typeof fh, {
      writeFile: wrap('writeFile'),
      sync: wrap('sync'),
      close: wrap('close'),
    });
  };
  return { ...real, open, default: { ...real, open } };
});

const dir = mkdtempSync(join(tmpdir(), 'pvblk-replace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** node's file operations, each call recorded (with the file it touched) before it runs. */
function recording(fail?: { op: keyof ReplaceFileSystem; error: Error }) {
  const calls: string[] = [];
  const rel = (p: string) => (p === dir ? '<dir>' : p.slice(dir.length + 1).replace(/\.tmp$/, '.<tmp>'));
  const fs: ReplaceFileSystem = {
    async writeAndSync(p, d, m) {
      calls.push(`writeAndSync ${rel(p)}`);
      if (fail?.op === 'writeAndSync') throw fail.error;
      return nodeReplaceFileSystem.writeAndSync(p, d, m);
    },
    async rename(a, b) {
      calls.push(`rename ${rel(a)} ${rel(b)}`);
      if (fail?.op === 'rename') throw fail.error;
      return nodeReplaceFileSystem.rename(a, b);
    },
    async syncDirectory(p) {
      calls.push(`syncDirectory ${rel(p)}`);
      return nodeReplaceFileSystem.syncDirectory(p);
    },
    async remove(p) {
      calls.push(`remove ${rel(p)}`);
      return nodeReplaceFileSystem.remove(p);
    },
  };
  return { fs, calls };
}

describe('replaceFile', () => {
  it("flushes the file's data before closing it, and the directory through a handle of its own", async () => {
    handleOps.length = 0;
    const file = join(dir, 'synced.json');
    await replaceFile(file, 'data\n');
    const base = dir.split('/').pop();
    expect(handleOps).toEqual([
      `open synced.json.tmp w`,
      `writeFile synced.json.tmp`,
      `sync synced.json.tmp`,
      `close synced.json.tmp`,
      `open ${base} r`,
      `sync ${base}`,
      `close ${base}`,
    ]);
  });

  it('flushes the new contents before the rename and the directory after it', async () => {
    const file = join(dir, 'registry.json');
    writeFileSync(file, 'old\n');
    const { fs, calls } = recording();
    await replaceFile(file, 'new\n', { fs });
    expect(calls).toEqual([
      'writeAndSync registry.json.<tmp>',
      'rename registry.json.<tmp> registry.json',
      'syncDirectory <dir>',
    ]);
    expect(readFileSync(file, 'utf8')).toBe('new\n');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('gives the new file the mode asked for', async () => {
    const file = join(dir, 'token');
    await replaceFile(file, 'secret\n', { mode: 0o600 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe('secret\n');
  });

  it('leaves the old file and no temporary file when the rename fails', async () => {
    const file = join(dir, 'header.json');
    writeFileSync(file, 'kept\n');
    const { fs, calls } = recording({ op: 'rename', error: new Error('EXDEV: simulated') });
    await expect(replaceFile(file, 'lost\n', { fs })).rejects.toThrow('EXDEV: simulated');
    expect(calls).toEqual([
      'writeAndSync header.json.<tmp>',
      'rename header.json.<tmp> header.json',
      'remove header.json.<tmp>',
    ]);
    expect(readFileSync(file, 'utf8')).toBe('kept\n');
    expect(readdirSync(dir).filter((f) => f.startsWith('header.json.'))).toEqual([]);
  });

  it('rejects with the file system error for a directory that does not exist', async () => {
    await expect(replaceFile(join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('runs replacements of one file one after the other: the last asked for wins', async () => {
    const file = join(dir, 'raced.json');
    const { fs, calls } = recording();
    await Promise.all([replaceFile(file, 'a', { fs }), replaceFile(file, 'b', { fs })]);
    expect(calls).toEqual([
      'writeAndSync raced.json.<tmp>',
      'rename raced.json.<tmp> raced.json',
      'syncDirectory <dir>',
      'writeAndSync raced.json.<tmp>',
      'rename raced.json.<tmp> raced.json',
      'syncDirectory <dir>',
    ]);
    expect(readFileSync(file, 'utf8')).toBe('b');
    expect(readdirSync(dir).filter((f) => f.startsWith('raced.json.'))).toEqual([]);
  });

  it('goes on with the next replacement of a file after one failed', async () => {
    const file = join(dir, 'after-failure.json');
    const failing = recording({ op: 'writeAndSync', error: new Error('EIO: simulated') });
    const first = replaceFile(file, 'x', { fs: failing.fs });
    const second = replaceFile(file, 'y');
    await expect(first).rejects.toThrow('EIO: simulated');
    await second;
    expect(readFileSync(file, 'utf8')).toBe('y');
  });
});
