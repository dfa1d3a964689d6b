/**
 * A fuzzer for the hypervisor process's wire input: random, truncated, mutated and type-confused
 * frames, and well-formed calls with hostile values, sent by strangers (before hello) and by an
 * authenticated guest. A victim guest keeps a grant, a port and a XenStore node throughout, and must
 * keep being served; at the end every attacker domain is destroyed and the hypervisor must hold
 * exactly what it held before (domains, grants, mappings, ports, XenStore nodes).
 *
 * Used by the test suite (a bounded number of frames) and by scripts/fuzz-campaign.ts (≥ 100k).
 * Seeded: the same seed sends the same frames in the same order.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { connectWs, type XenClient } from '@pvblk/client';
import { encodeFrame, WIRE_VERSION, type ClientMessage } from '@pvblk/shared';

export interface BrokerFuzzOptions {
  /** ws://… of a running hypervisor process, and its Dom0 secret. */
  url: string;
  dom0Secret: string;
  frames: number;
  seed: number;
  /** Frames sent per burst before the victim is checked. */
  burst?: number;
  onProgress?: (sent: number) => void;
}

export interface BrokerFuzzReport {
  seed: number;
  framesSent: number;
  framesPreAuth: number;
  framesAuthenticated: number;
  errorsAnswered: number;
  connectionsClosedByBroker: number;
  attackerDomainsCreated: number;
  victimChecks: number;
  victimFailures: number;
  hypervisorDown: number;
  /** What the hypervisor held before and after, minus what the fuzzer's own clients hold. */
  leaks: string[];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

function msgRecord(body: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h[0] = 1;
  h.writeUInt32LE(body.length, 1);
  return Buffer.concat([h, body]);
}
function frameOf(records: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([WIRE_VERSION]), ...records]);
}

const CALLS: ClientMessage['t'][] = [
  'hello',
  'dom_create',
  'dom_destroy',
  'dom_list',
  'gnt_grant',
  'gnt_end',
  'gnt_map',
  'gnt_unmap',
  'gnt_copy',
  'ev_alloc_unbound',
  'ev_bind_interdomain',
  'ev_close',
  'ev_status',
  'ev_mask',
  'ev_unmask',
  'xs',
  'fence',
];

/** Any value a peer could put in a field: right type or not, in range or not. */
const anyField: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -5, max: 70000 }),
  fc.constantFrom(0, 1, 8, 0xffff, 0x7ff0, 0xffffffff, -1, 2 ** 40, 0.5, Number.MAX_SAFE_INTEGER),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('/', '/local/domain/0', '/local/domain/1/..', '@releaseDomain', 'x'.repeat(5000), ''),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 5000 }),
  fc.array(fc.oneof(fc.integer({ min: -1, max: 40000 }), fc.string({ maxLength: 8 })), { maxLength: 40 }),
  fc.array(
    fc.record({
      dom: fc.integer({ min: -1, max: 10 }),
      ref: fc.integer({ min: -1, max: 40000 }),
      readonly: fc.boolean(),
      dir: fc.constantFrom('from', 'to', 'sideways'),
      off: fc.integer({ min: -1, max: 5000 }),
      len: fc.integer({ min: -1, max: 5000 }),
      data: fc.uint8Array({ maxLength: 64 }),
    }),
    { maxLength: 20 },
  ),
);

/** A call with a known type and hostile fields. */
const hostileCall = fc
  .record({
    t: fc.constantFrom(...CALLS),
    id: fc.oneof(fc.nat(1000), fc.constant(-1), fc.constant('id')),
    fields: fc.dictionary(
      fc.constantFrom(
        'v',
        'credential',
        'name',
        'domid',
        'ref',
        'gfn',
        'readonly',
        'data',
        'refs',
        'ops',
        'handles',
        'dom',
        'remoteDom',
        'remotePort',
        'port',
        'op',
        'tx',
        'path',
        'value',
        'perms',
        'token',
        'commit',
      ),
      anyField,
      { maxKeys: 6 },
    ),
  })
  .map(({ t, id, fields }) => msgRecord(packr.pack({ ...fields, t, id })));

/** A binary record with random fields (page writes, events, ring checks). */
const binaryRecord = fc
  .tuple(
    fc.constantFrom(2, 3, 4, 5, 6, 7, 8, 0, 0xff),
    fc.oneof(fc.nat(70000), fc.constant(0xffffffff)),
    fc.nat(4200),
    fc.uint8Array({ minLength: 0, maxLength: 80 }),
  )
  .map(([kind, a, off, rest]) => {
    const b = Buffer.alloc(9 + rest.length);
    b[0] = kind;
    b.writeUInt32LE(a, 1);
    b.writeUInt16LE(off & 0xffff, 5);
    b.writeUInt16LE(rest.length, 7);
    Buffer.from(rest).copy(b, 9);
    return b;
  });

/** A valid frame of the protocol, then mutated (bit flips, truncation, repetition). */
const mutatedValid = fc
  .tuple(
    fc.constantFrom(
      encodeFrame([{ t: 'xs', id: 3, op: 'write', tx: 0, path: 'data/x', value: 'y' }]),
      encodeFrame([{ t: 'gnt_map', id: 4, ops: [{ dom: 0, ref: 8, readonly: true }] }]),
      encodeFrame([
        { t: 'mw', gfn: 0x1000, off: 0, data: Buffer.alloc(32, 1) },
        { t: 'ev_notify_if', port: 1, mapped: false, page: 0x1000, eventOff: 4, oldProd: 0, newProd: 1 },
      ]),
    ),
    fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { maxLength: 6 }),
    fc.option(fc.nat(200)),
  )
  .map(([f, flips, cut]) => {
    const b = Buffer.from(f);
    for (const [i, v] of flips) if (i < b.length) b[i] = v;
    return cut === null ? b : b.subarray(0, Math.min(cut, b.length));
  });

const anyFrame: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: fc.array(hostileCall, { minLength: 1, maxLength: 4 }).map(frameOf) },
  { weight: 2, arbitrary: fc.array(binaryRecord, { minLength: 1, maxLength: 4 }).map(frameOf) },
  { weight: 2, arbitrary: mutatedValid },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from([WIRE_VERSION]), b])),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
);

interface Held {
  domains: number;
  grants: number;
  mappings: number;
  ports: number;
  nodes: number;
}

async function held(url: string, secret: string): Promise<Held> {
  const s = (await (
    await fetch(`${url.replace('ws://', 'http://')}status`, {
      headers: { authorization: `Bearer ${secret}` },
    })
  ).json()) as {
    domains: Array<{ grants: number; mappings: number; ports: number }>;
    xenstore: { nodes: number };
  };
  return {
    domains: s.domains.length,
    grants: s.domains.reduce((n, d) => n + d.grants, 0),
    mappings: s.domains.reduce((n, d) => n + d.mappings, 0),
    ports: s.domains.reduce((n, d) => n + d.ports, 0),
    nodes: s.xenstore.nodes,
  };
}

/** A raw socket that sends frames and counts what comes back. */
class RawPeer {
  private ws: WebSocket;
  readonly opened: Promise<void>;
  readonly gone: Promise<void>;
  closedByBroker = false;
  closed = false;
  errors = 0;
  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.opened = new Promise((resolve) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', () => resolve());
    });
    this.ws.on('message', (d: Buffer) => {
      // every err reply to a peer is a MSG record; counting them by their first byte pattern is enough
      if (d.includes(Buffer.from('err'))) this.errors++;
    });
    this.gone = new Promise((resolve) =>
      this.ws.on('close', (code) => {
        this.closed = true;
        this.closedByBroker = code >= 4000;
        resolve();
      }),
    );
    this.ws.on('error', () => {});
  }
  send(f: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(f, { binary: true });
  }
  close(): void {
    this.ws.terminate();
  }
}

export async function fuzzBroker(o: BrokerFuzzOptions): Promise<BrokerFuzzReport> {
  const report: BrokerFuzzReport = {
    seed: o.seed,
    framesSent: 0,
    framesPreAuth: 0,
    framesAuthenticated: 0,
    errorsAnswered: 0,
    connectionsClosedByBroker: 0,
    attackerDomainsCreated: 0,
    victimChecks: 0,
    victimFailures: 0,
    hypervisorDown: 0,
    leaks: [],
  };
  // Dom0's previous connection (an earlier run's) may not be gone from the broker yet: EBUSY until it is
  let dom0: XenClient | null = null;
  for (let attempt = 0; !dom0; attempt++) {
    try {
      dom0 = await connectWs(o.url, { credential: o.dom0Secret, retryForMs: 0 });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EBUSY' || attempt >= 100) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // the victim: a guest with a grant, a port and a node of its own, that must keep being served
  const v = await dom0.domctl.create('fuzz-victim');
  const victim = await connectWs(o.url, { credential: v.credential, retryForMs: 0 });
  const page = victim.allocPage();
  page.write(0, Buffer.from('victim'));
  victim.gnttab.grantAccess(page, 0, true);
  await victim.evtchn.allocUnbound(0);
  await dom0.xs.mkdir(`/local/domain/${victim.domid}/data`);
  await dom0.xs.setPerms(`/local/domain/${victim.domid}/data`, [`n${victim.domid}`]);
  await victim.xs.write(`/local/domain/${victim.domid}/data/alive`, 'yes');
  const baseline = await held(o.url, o.dom0Secret);

  const frames = fc.sample(anyFrame, { numRuns: o.frames, seed: o.seed });
  const burst = o.burst ?? 200;
  let raw: RawPeer | null = null;
  const newAttacker = async () => {
    const d = await dom0.domctl.create(`fuzz-${report.attackerDomainsCreated++}`);
    const p = new RawPeer(o.url);
    await p.opened;
    p.send(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: d.credential }]));
    return p;
  };
  const retire = (p: RawPeer) => {
    report.errorsAnswered += p.errors;
    if (p.closedByBroker) report.connectionsClosedByBroker++;
    p.close();
  };
  for (let i = 0; i < frames.length; i += burst) {
    const chunk = frames.slice(i, i + burst);
    // bursts alternate between an authenticated guest and strangers that have not said hello
    if ((i / burst) % 2 === 0) {
      for (const f of chunk) {
        // an attacker the broker dropped (100 bad frames in a row) is replaced by a fresh domain
        if (!raw || raw.closed) {
          if (raw) retire(raw);
          raw = await newAttacker();
        }
        raw.send(f);
      }
      report.framesAuthenticated += chunk.length;
    } else {
      // before hello the first frame decides: one stranger per frame
      for (const f of chunk) {
        const p = new RawPeer(o.url);
        await p.opened;
        p.send(f);
        // every frame but a valid hello makes the broker answer and close; the timer only bounds a bug
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([p.gone, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
        clearTimeout(timer);
        if (!p.closed) report.leaks.push(`a stranger was neither refused nor closed (frame ${i})`);
        retire(p);
      }
      report.framesPreAuth += chunk.length;
    }
    report.framesSent += chunk.length;
    o.onProgress?.(report.framesSent);
    // the victim is still served: a fence round trip and its own node
    report.victimChecks++;
    try {
      await Promise.race([
        (async () => {
          await victim.fence();
          if ((await victim.xs.read(`/local/domain/${victim.domid}/data/alive`)) !== 'yes')
            throw new Error('node');
        })(),
        new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 10_000)),
      ]);
    } catch {
      report.victimFailures++;
    }
    try {
      const h = await fetch(`${o.url.replace('ws://', 'http://')}healthz`);
      if (h.status !== 200) report.hypervisorDown++;
    } catch {
      report.hypervisorDown++;
    }
  }
  if (raw) retire(raw);
  // tear every attacker down; what remains must be what was there before
  for (const d of await dom0.domctl.list()) {
    if (d.name.startsWith('fuzz-') && d.name !== 'fuzz-victim')
      await dom0.domctl.destroy(d.domid).catch(() => {});
  }
  for (const d of await dom0.domctl.list()) {
    if (d.name.startsWith('fuzz-') && d.name !== 'fuzz-victim')
      report.leaks.push(`domain ${d.domid} survived`);
  }
  // attacker domains' XenStore homes are the toolstack's to remove; the fuzzer created none beyond the broker's own
  const after = await held(o.url, o.dom0Secret);
  for (const k of Object.keys(baseline) as Array<keyof Held>) {
    if (after[k] !== baseline[k]) report.leaks.push(`${k}: ${baseline[k]} before, ${after[k]} after`);
  }
  victim.close();
  await dom0.domctl.destroy(victim.domid).catch(() => {});
  dom0.close();
  return report;
}
