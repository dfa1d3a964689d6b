/**
 * The checker's memory of what each block of a guest's disk may hold: a shadow of acknowledged data,
 * kept by the controller (outside the guest, so it survives the guest's death).
 *
 * Per block, two sets of write ids (0: zeros), and a third for the torn mixes seen:
 *   visible   what a read must return now — the page cache's data for a dirty block;
 *   ondisk    what the medium may hold — what a read returns once the guest's page cache is gone.
 * An acknowledged O_DIRECT write sets both to {id}. A failed or interrupted one adds its id to both
 * (and a torn mix becomes acceptable). A buffered write sets visible to {id} and adds it to ondisk
 * (writeback may happen at any time); a successful fsync makes ondisk = visible — flush semantics:
 * after it, the data must survive the guest; before it, it may or may not. A guest crash makes
 * visible = ondisk. A read narrows the sets to what it saw.
 *
 * A write acknowledged by dm-flakey's drop_writes never reaches the disk: it changes nothing here, and
 * is remembered, so a read that shows the old data is the fault's doing and a read that shows the new
 * data is a bug. A block a fault corrupted silently is remembered with its corruption until rewritten.
 */

/** A read's verdict on one block (see chaos-io): a write id, a torn mix per sector, or a corruption. */
export type BlockVerdict = number | { t: number[] } | { x: number; near: number };

type Value = number | string;

interface BlockState {
  visible: Set<Value>;
  ondisk: Set<Value>;
  dirty: boolean;
  /** A write failed or was interrupted: a per-sector mix of the values is acceptable. */
  tornOk: boolean;
  /** Write ids acknowledged but thrown away by drop_writes. */
  dropped: Set<number>;
  /** Silently corrupted by a fault: the corruption seen (bits from write `near`). */
  poisoned: { near: number; bits: number; cause: string } | null;
}

export type Mismatch =
  | { kind: 'ok' }
  /** Consistent, and it shows that writes acknowledged under drop_writes were lost (the fault's doing). */
  | { kind: 'dropped'; wids: number[] }
  | { kind: 'corrupt'; bits: number; near: number; known: boolean }
  | { kind: 'wrong'; got: string; expected: string };

function tornKey(t: number[]): string {
  return `t:${t.join(',')}`;
}

function show(v: Value): string {
  return typeof v === 'number' ? (v === 0 ? 'zeros' : `write ${v}`) : `a torn mix (${v.slice(2)})`;
}

export class Shadow {
  private readonly blocks: BlockState[];

  constructor(nblocks: number, initial: 'zeros' | 'unknown' = 'zeros') {
    this.blocks = Array.from({ length: nblocks }, () => ({
      visible: new Set<Value>(initial === 'zeros' ? [0] : []),
      ondisk: new Set<Value>(initial === 'zeros' ? [0] : []),
      dirty: false,
      tornOk: false,
      dropped: new Set<number>(),
      poisoned: null,
    }));
  }

  /** Write ids a read of the block may see, for the guest to judge against (unknown: none). */
  candidates(b: number): number[] {
    const s = this.blocks[b];
    const out = new Set<number>();
    for (const v of s.visible) {
      if (typeof v === 'number') out.add(v);
      else for (const w of v.slice(2).split(',')) out.add(Number(w));
    }
    for (const w of s.dropped) out.add(w);
    if (s.poisoned) out.add(s.poisoned.near);
    return [...out];
  }

  /** The block's state is unknown (a disk not made by this run): any first read defines it. */
  isUnknown(b: number): boolean {
    return this.blocks[b].visible.size === 0;
  }

  writeAcked(b: number, wid: number, direct: boolean, dropped: boolean): void {
    const s = this.blocks[b];
    if (dropped && direct) {
      s.dropped.add(wid);
      return;
    }
    if (direct) {
      s.visible = new Set([wid]);
      s.ondisk = new Set([wid]);
      s.dirty = false;
    } else {
      s.visible = new Set([wid]);
      s.ondisk.add(wid);
      s.dirty = true;
    }
    s.tornOk = false;
    s.poisoned = null;
    s.dropped.clear();
  }

  /** A write that failed, was interrupted, or hung: it may or may not have landed, even in part. */
  writeUncertain(b: number, wid: number): void {
    const s = this.blocks[b];
    s.visible.add(wid);
    s.ondisk.add(wid);
    s.tornOk = true;
  }

  discardAcked(b: number, dropped: boolean): void {
    if (dropped) return;
    const s = this.blocks[b];
    // after a discard a block reads as zeros or as before (discard_zeroes_data is not promised)
    s.visible.add(0);
    s.ondisk.add(0);
  }

  /** fsync succeeded: what the page cache held is on the disk (unless drop_writes ate the writeback). */
  synced(dropped: boolean): void {
    for (const s of this.blocks) {
      if (!s.dirty) continue;
      if (!dropped) s.ondisk = new Set(s.visible);
      s.dirty = false;
    }
  }

  /** fsync failed: the cache dropped what it could not write back; reads go to the disk again. */
  syncFailed(): void {
    for (const s of this.blocks) {
      if (!s.dirty) continue;
      for (const v of s.visible) s.ondisk.add(v);
      s.visible = new Set(s.ondisk);
      s.dirty = false;
      s.tornOk = true;
    }
  }

  /** The guest went away: its page cache with it. */
  guestLost(): void {
    for (const s of this.blocks) {
      s.visible = new Set(s.ondisk);
      s.dirty = false;
    }
  }

  /** A block a fault corrupted silently (the checker saw it; it is counted once). */
  poison(b: number, near: number, bits: number, cause: string): void {
    this.blocks[b].poisoned = { near, bits, cause };
  }

  poisoned(b: number): BlockState['poisoned'] {
    return this.blocks[b].poisoned;
  }

  /**
   * Judges what a read saw; narrows the block's sets when it is consistent. A read through the page
   * cache says what the cache holds, not what the disk does (a page whose writeback drop_writes
   * threw away is clean there and different on the disk): only a direct read narrows `ondisk`.
   */
  read(b: number, v: BlockVerdict, viaCache = false): Mismatch {
    const s = this.blocks[b];
    if (s.visible.size === 0) {
      // unknown until now: what was read defines it
      const val: Value = typeof v === 'number' ? v : 't' in v ? tornKey(v.t) : `x:${v.near}`;
      s.visible = new Set([val]);
      s.ondisk = new Set([val]);
      return { kind: 'ok' };
    }
    if (typeof v === 'number') {
      if (s.visible.has(v)) {
        s.visible = new Set([v]);
        if (!s.dirty && !viaCache) s.ondisk = new Set([v]);
        const lost = [...s.dropped];
        s.dropped.clear();
        return lost.length ? { kind: 'dropped', wids: lost } : { kind: 'ok' };
      }
      if (s.dropped.has(v))
        return { kind: 'wrong', got: `${show(v)}, which drop_writes threw away`, expected: this.expect(s) };
      return { kind: 'wrong', got: show(v), expected: this.expect(s) };
    }
    if ('t' in v) {
      const key = tornKey(v.t);
      const ok = s.visible.has(key) || (s.tornOk && v.t.every((w) => s.visible.has(w)));
      if (!ok) return { kind: 'wrong', got: show(key), expected: this.expect(s) };
      s.visible = new Set([key]);
      if (!s.dirty && !viaCache) s.ondisk = new Set([key]);
      return { kind: 'ok' };
    }
    const known = s.poisoned !== null && s.poisoned.near === v.near && v.x <= Math.max(8, s.poisoned.bits);
    return { kind: 'corrupt', bits: v.x, near: v.near, known };
  }

  private expect(s: BlockState): string {
    return [...s.visible].map(show).join(' or ');
  }
}
