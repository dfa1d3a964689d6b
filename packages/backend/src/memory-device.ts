/**
 * A HostBlockDevice held in memory: what unit tests serve a vbd from, with the same semantics as the
 * SCSI disk at the interface (512-byte units, range and read-only checks, errors as data) and a hook
 * to fail chosen requests.
 */
import type { HostBlockDevice, IoError, IoResult, ReadResult } from './block-device.ts';

export interface MemoryDeviceOptions {
  name?: string;
  sectors?: number;
  logicalBlockSize?: number;
  physicalBlockSize?: number;
  readOnly?: boolean;
  writeCache?: boolean;
  discard?: HostBlockDevice['discard'];
  /** Added latency per request, ms (a slow device). */
  delayMs?: number;
}

export class MemoryBlockDevice implements HostBlockDevice {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly readOnly: boolean;
  readonly writeCache: boolean;
  readonly discard: HostBlockDevice['discard'];
  readonly integrity = null;
  readonly data: Buffer;
  delayMs: number;
  /** Return an error for a request instead of doing it. */
  failWhen:
    ((op: 'read' | 'write' | 'flush' | 'discard', sector: number, count: number) => IoError | null) | null =
    null;
  readonly log: Array<{ op: string; sector: number; count: number }> = [];
  flushes = 0;

  constructor(o: MemoryDeviceOptions = {}) {
    this.name = o.name ?? 'mem0';
    this.sectors = o.sectors ?? 16384;
    this.logicalBlockSize = o.logicalBlockSize ?? 512;
    this.physicalBlockSize = o.physicalBlockSize ?? this.logicalBlockSize;
    this.readOnly = o.readOnly ?? false;
    this.writeCache = o.writeCache ?? true;
    this.discard =
      o.discard === undefined
        ? { granularity: this.logicalBlockSize, alignment: 0, secure: false }
        : o.discard;
    this.delayMs = o.delayMs ?? 0;
    this.data = Buffer.alloc(this.sectors * 512);
  }

  private async pause(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  private check(op: 'read' | 'write' | 'flush' | 'discard', sector: number, count: number): IoError | null {
    this.log.push({ op, sector, count });
    if (op !== 'flush' && (sector < 0 || sector + count > this.sectors)) return { kind: 'range', sector };
    if (op !== 'read' && op !== 'flush' && this.readOnly) return { kind: 'readonly', sector };
    return this.failWhen?.(op, sector, count) ?? null;
  }

  async read(sector: number, count: number): Promise<ReadResult> {
    await this.pause();
    const e = this.check('read', sector, count);
    if (e) return { ok: false, error: e };
    return { ok: true, data: Buffer.from(this.data.subarray(sector * 512, (sector + count) * 512)) };
  }

  async write(sector: number, data: Buffer): Promise<IoResult> {
    await this.pause();
    const e = this.check('write', sector, data.length / 512);
    if (e) return { ok: false, error: e };
    data.copy(this.data, sector * 512);
    return { ok: true };
  }

  async flush(): Promise<IoResult> {
    await this.pause();
    const e = this.check('flush', 0, 0);
    if (e) return { ok: false, error: e };
    this.flushes++;
    return { ok: true };
  }

  async discardRange(sector: number, count: number): Promise<IoResult> {
    await this.pause();
    const e = this.check('discard', sector, count);
    if (e) return { ok: false, error: e };
    this.data.fill(0, sector * 512, (sector + count) * 512);
    return { ok: true };
  }

  async close(): Promise<void> {}
}
