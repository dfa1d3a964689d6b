/**
 * Replacing a small file (a registry, a disk's header, a guest's token) so that a crash of the
 * machine at any moment leaves it holding the old contents or the new ones — never nothing, never
 * part. A temporary file beside it is written and flushed to the disk before it is renamed over the
 * file, and the directory is flushed after, so that the rename itself is on the disk when the call
 * returns: what the caller then acknowledges (a disk created, a guest enrolled) survives.
 *
 * A rename alone makes the replacement atomic for readers, not durable: without the first flush a
 * file system may commit the rename before the data (the zero-length files of delayed allocation),
 * and without the second the rename may not be committed at all. The order is that of PostgreSQL's
 * durable_rename() and of the ext4 documentation's advice.
 */
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The few file operations a replacement takes; node:fs/promises's by default, others in tests. */
export interface ReplaceFileSystem {
  writeAndSync(path: string, data: string | Uint8Array, mode: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Flushes a directory's entries (fsync of the directory opened read-only). */
  syncDirectory(path: string): Promise<void>;
  remove(path: string): Promise<void>;
}

export const nodeReplaceFileSystem: ReplaceFileSystem = {
  async writeAndSync(path, data, mode) {
    const fh = await open(path, 'w', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  rename,
  async syncDirectory(path) {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  remove: (path) => rm(path, { force: true }),
};

/** Replacements under way in this process, by path: each waits for the one before it. */
const replacing = new Map<string, Promise<void>>();

/**
 * Replaces `path`'s contents with `data` durably (see above). Replacements of one path made by this
 * process run one after the other, in the order they were asked for — the last one asked for is what
 * the file holds — so they can share the temporary file `<path>.tmp` (a file has one writer: the
 * process that owns its directory). On failure the temporary file is removed and the error is the
 * caller's. `mode` is the new file's (0o600 for secrets).
 */
export function replaceFile(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number; fs?: ReplaceFileSystem } = {},
): Promise<void> {
  const before = replacing.get(path) ?? Promise.resolve();
  const turn = before.then(() =>
    replaceNow(path, data, opts.mode ?? 0o644, opts.fs ?? nodeReplaceFileSystem),
  );
  const settled = turn.catch(() => {});
  replacing.set(path, settled);
  void settled.then(() => {
    if (replacing.get(path) === settled) replacing.delete(path);
  });
  return turn;
}

async function replaceNow(path: string, data: string | Uint8Array, mode: number, fs: ReplaceFileSystem) {
  const tmp = `${path}.tmp`;
  try {
    await fs.writeAndSync(tmp, data, mode);
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.remove(tmp).catch(() => {});
    throw e;
  }
  await fs.syncDirectory(dirname(path));
}
