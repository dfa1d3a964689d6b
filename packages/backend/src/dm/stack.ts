/**
 * The device-mapper stack on a host disk: what blkback really talks to. Empty, it is the disk itself
 * (one call through); each layer is a mapped device whose table maps the whole device below it —
 * `dmsetup create`, `reload`, `message` and `remove` at run time, while the vbd stays connected.
 *
 * In Linux the vbd would be configured on /dev/mapper/<name> from the start; here every vbd's disk
 * has a stack, so a fault can be put under a running guest and taken away again.
 */
import { ownEntry, PvblkError, type KernelLog } from '@pvblk/shared';
import type { HostBlockDevice, IoResult, PiBuffer, ReadResult } from '../block-device.ts';
import { delay } from './delay.ts';
import { dust } from './dust.ts';
import { flakey } from './flakey.ts';
import { errorTarget, linear, type DmTarget, type TargetFactory } from './target.ts';

export const DM_TARGETS: Record<string, TargetFactory> = { linear, error: errorTarget, flakey, dust, delay };

export interface DmLayer {
  name: string;
  target: DmTarget;
}

export interface DmLayerInfo {
  name: string;
  /** `dmsetup table`: `0 <length> <type> <args>`. */
  table: string;
  /** `dmsetup status`. */
  status: string;
  /** I/O held by the target (delay): 0 at rest. */
  pending: number;
  /** What the target did to I/O so far (flakey: failed, dropped, corrupted; dust: failed, remapped). */
  counters?: Record<string, number>;
}

/** Every device-mapper device here maps its whole base: it has the base's geometry and features. */
abstract class BaseGeometry {
  constructor(readonly base: HostBlockDevice) {}
  get sectors() {
    return this.base.sectors;
  }
  get logicalBlockSize() {
    return this.base.logicalBlockSize;
  }
  get physicalBlockSize() {
    return this.base.physicalBlockSize;
  }
  get readOnly() {
    return this.base.readOnly;
  }
  get integrity() {
    return this.base.integrity;
  }
  get writeCache() {
    return this.base.writeCache;
  }
  get discard() {
    return this.base.discard;
  }
}

/**
 * A mapped device: a layer's target, with the geometry of the disk below. The device stays while its
 * table changes (reload swaps the target in place), so a layer stacked on it reaches the new table,
 * as a device stacked on a dm device does in Linux after `dmsetup reload` and `resume`.
 */
class LayerDevice extends BaseGeometry implements HostBlockDevice {
  constructor(
    base: HostBlockDevice,
    public target: DmTarget,
    readonly name: string,
  ) {
    super(base);
  }
  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult> {
    return this.target.read(sector, count, pi);
  }
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    return this.target.write(sector, data, pi);
  }
  flush(): Promise<IoResult> {
    return this.target.flush();
  }
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    return this.target.discardRange(sector, count, secure);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const NAME = /^[A-Za-z0-9_.+-]{1,64}$/;
/**
 * Layers one disk may have. Linux bounds stacking by its kernel stack rather than by a number; each
 * layer here is a frame of the I/O's call chain, so a limit says so before the chain runs out.
 */
export const MAX_DM_LAYERS = 16;

export class DmStack extends BaseGeometry implements HostBlockDevice {
  private readonly layers: LayerDevice[] = [];

  constructor(
    base: HostBlockDevice,
    /** How tables may name the base device: `/dev/sdg`, `8:96`. */
    private readonly baseNames: string[],
    private readonly klog: KernelLog,
    private readonly now: () => number = Date.now,
  ) {
    super(base);
  }

  get name() {
    return this.base.name;
  }

  private get top(): HostBlockDevice {
    return this.layers[this.layers.length - 1] ?? this.base;
  }

  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult> {
    return this.top.read(sector, count, pi);
  }
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    return this.top.write(sector, data, pi);
  }
  flush(): Promise<IoResult> {
    return this.top.flush();
  }
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    return this.top.discardRange(sector, count, secure);
  }
  async close(): Promise<void> {
    this.clear();
    await this.base.close();
  }

  /** The layer called `name`. */
  private layer(name: string): { i: number; l: LayerDevice } {
    const i = this.layers.findIndex((l) => l.name === name);
    if (i < 0) throw new PvblkError('ENOENT', `no mapped device ${name} on ${this.base.name}`);
    return { i, l: this.layers[i] };
  }

  /** Parses `<start> <length> <target> <args…>` for a layer sitting on layer `below` (-1: the disk). */
  private build(line: string, below: number): DmTarget {
    const lines = line.split('\n').filter((l) => l.trim().length > 0);
    if (lines.length !== 1)
      throw new PvblkError('EINVAL', `a table is one line here (got ${lines.length}): one target per device`);
    const [start, length, type, ...args] = lines[0].trim().split(/\s+/);
    if (start !== '0' || length !== String(this.base.sectors))
      throw new PvblkError(
        'EINVAL',
        `the table must map the whole device: "0 ${this.base.sectors} <target> …" (got "${start ?? ''} ${length ?? ''}")`,
      );
    const factory = type === undefined ? undefined : ownEntry(DM_TARGETS, type);
    if (!factory)
      throw new PvblkError(
        'EINVAL',
        `unknown target type ${JSON.stringify(type ?? '')} (known: ${Object.keys(DM_TARGETS).join(', ')})`,
      );
    const lower = below < 0 ? this.base : this.layers[below];
    const lowerNames = below < 0 ? this.baseNames : [`/dev/mapper/${this.layers[below].name}`];
    return factory(args, { lower, lowerNames, length: this.base.sectors, klog: this.klog, now: this.now });
  }

  /** dmsetup create <name> --table '<line>': a new layer on top. */
  create(name: string, line: string): DmLayerInfo {
    if (!NAME.test(name)) throw new PvblkError('EINVAL', `bad mapped device name ${JSON.stringify(name)}`);
    if (this.layers.some((l) => l.name === name))
      throw new PvblkError('EEXIST', `device ${name} already exists`);
    if (this.layers.length >= MAX_DM_LAYERS)
      throw new PvblkError('EINVAL', `a disk may have at most ${MAX_DM_LAYERS} device-mapper layers`);
    const target = this.build(line, this.layers.length - 1);
    // described before it is stacked: a layer that cannot say what it is never takes I/O
    const info = this.info(name, target);
    this.layers.push(new LayerDevice(this.base, target, name));
    return info;
  }

  /** dmsetup reload <name> --table '<line>' && dmsetup resume <name>. */
  reload(name: string, line: string): DmLayerInfo {
    const { i, l } = this.layer(name);
    const target = this.build(line, i - 1);
    const info = this.info(name, target);
    const old = l.target;
    l.target = target;
    old.close();
    return info;
  }

  /** dmsetup message <name> 0 <text>. */
  message(name: string, text: string): string {
    const argv = text
      .trim()
      .split(/\s+/)
      .filter((a) => a.length > 0);
    if (argv.length === 0) throw new PvblkError('EINVAL', 'an empty message');
    return this.layer(name).l.target.message(argv);
  }

  /** dmsetup remove <name>: only a device nothing sits on. */
  remove(name: string): void {
    const { i, l } = this.layer(name);
    if (i !== this.layers.length - 1)
      throw new PvblkError('EBUSY', `device ${name} is in use by ${this.layers[i + 1].name}`);
    l.target.close();
    this.layers.pop();
  }

  /** dmsetup remove_all for this disk: every layer, top first. */
  clear(): void {
    while (this.layers.length) this.layers.pop()!.target.close();
  }

  private info(name: string, t: DmTarget): DmLayerInfo {
    const head = `0 ${this.base.sectors} ${t.type}`;
    const table = t.table();
    const status = t.status();
    return {
      name,
      table: table ? `${head} ${table}` : head,
      status: status ? `${head} ${status}` : head,
      pending: t.pending(),
      ...('counters' in t ? { counters: { ...(t as { counters: Record<string, number> }).counters } } : {}),
    };
  }

  list(): DmLayerInfo[] {
    return this.layers.map((l) => this.info(l.name, l.target));
  }

  /** The target of a layer (tests and the chaos checker read its counters). */
  target(name: string): DmTarget {
    return this.layer(name).l.target;
  }
}
