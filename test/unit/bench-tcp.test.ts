import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import {
  NO_TCP,
  parseCongestionControl,
  parseTcpCounters,
  tcpBetween,
  tcpCongestionControl,
  tcpCounters,
  tcpCountersLine,
  tcpLine,
  tcpSum,
} from '../../src/cli/bench-tcp.ts';
import { CpuWindows } from '../../src/cli/bench-rss.ts';
import { tempDir } from '../process/helpers.ts';

const dir = tempDir('pvblk-tcp-');
afterAll(() => dir.cleanup());

function sysctl(text: string): string {
  const f = join(dir.path, `cc-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  return f;
}

describe("bench: the kernel's TCP congestion control", () => {
  it('reads the name the sysctl holds, newline and all', () => {
    expect(tcpCongestionControl(sysctl('bbr\n'))).toBe('bbr');
    expect(tcpCongestionControl(sysctl('cubic\n'))).toBe('cubic');
  });

  it('says unknown (null) for a file that is missing or holds no name', () => {
    expect(tcpCongestionControl(join(dir.path, 'absent'))).toBeNull();
    expect(tcpCongestionControl(sysctl(''))).toBeNull();
    expect(parseCongestionControl('bbr cubic')).toBeNull();
    expect(parseCongestionControl('x'.repeat(17))).toBeNull();
    expect(parseCongestionControl('BBR')).toBeNull();
  });

  it("reads this machine's own when Linux has one", () => {
    const mine = tcpCongestionControl();
    if (process.platform === 'linux') expect(mine).toMatch(/^[a-z0-9_]+$/);
    else expect(mine).toBeNull();
  });

  it('warns of pacing under bbr only, and names the sysctl', () => {
    expect(tcpLine('cubic')).toBe('TCP congestion control: cubic (net.ipv4.tcp_congestion_control)');
    const bbr = tcpLine('bbr');
    expect(bbr).toMatch(/^TCP congestion control: bbr \(net\.ipv4\.tcp_congestion_control\): /);
    expect(bbr).toMatch(/paces every flow/);
    expect(bbr).toMatch(/docs\/performance\.md/);
    expect(tcpLine(null)).toMatch(/unknown/);
  });
});

// the shape of Linux's /proc/net/snmp and /proc/net/netstat: a header line and a value line per table
// (TcpExt cut to some of its 130-odd fields; the parser takes the fields by name)
const snmp = (out: number, retrans: number) =>
  [
    'Ip: Forwarding DefaultTTL InReceives',
    'Ip: 1 64 72368529',
    'Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors',
    `Tcp: 1 200 120000 -1 36972 36860 38 3895 0 73054953 ${out} ${retrans} 0 3268 0`,
    'Udp: InDatagrams NoPorts',
    'Udp: 12 0',
    '',
  ].join('\n');
const netstat = (sack: number, dsack: number, probes: number, ofo: number) =>
  [
    'TcpExt: SyncookiesSent TCPSackRecovery TCPDSACKUndo TCPLossProbes TCPDSACKRecv TCPOFOQueue',
    `TcpExt: 0 ${sack} 57 ${probes} ${dsack} ${ofo}`,
    'IpExt: InNoRoutes InTruncatedPkts',
    'IpExt: 0 0',
    '',
  ].join('\n');

describe('bench: what TCP did in the namespace while a side ran', () => {
  it("reads the counters by name from snmp's Tcp and netstat's TcpExt tables", () => {
    expect(parseTcpCounters(snmp(73040295, 11920), netstat(160, 124, 12, 112))).toEqual({
      outSegs: 73040295,
      retransSegs: 11920,
      sackRecovery: 160,
      dsackRecv: 124,
      lossProbes: 12,
      ofoQueue: 112,
    });
  });

  it('says unknown for a table or a field that is missing, or a value that is not a number', () => {
    expect(parseTcpCounters('', netstat(1, 1, 1, 1))).toBeNull();
    expect(parseTcpCounters(snmp(1, 1), 'TcpExt: TCPSackRecovery\nTcpExt: 3\n')).toBeNull();
    expect(parseTcpCounters(snmp(1, 11920).replace(' 11920', ' x'), netstat(1, 1, 1, 1))).toBeNull();
    expect(parseTcpCounters(snmp(1, 1), netstat(1, 1, 1, 1).replace('TcpExt: 0 ', 'TcpExt: '))).toBeNull();
  });

  it('counts between two readings, adds windows up, and refuses counters that went backwards', () => {
    const a = parseTcpCounters(snmp(1000, 10), netstat(5, 5, 1, 4))!;
    const b = parseTcpCounters(snmp(1800, 14), netstat(8, 7, 1, 9))!;
    const d = tcpBetween(a, b)!;
    expect(d).toEqual({
      outSegs: 800,
      retransSegs: 4,
      sackRecovery: 3,
      dsackRecv: 2,
      lossProbes: 0,
      ofoQueue: 5,
    });
    expect(tcpBetween(b, a)).toBeNull();
    expect(tcpBetween(null, b)).toBeNull();
    expect(tcpSum(tcpSum(NO_TCP, d), d)).toEqual({
      outSegs: 1600,
      retransSegs: 8,
      sackRecovery: 6,
      dsackRecv: 4,
      lossProbes: 0,
      ofoQueue: 10,
    });
    expect(tcpSum(d, null)).toBeNull();
  });

  it("prints each side's counts, or pvblk's alone without a baseline", () => {
    const c = {
      outSegs: 108812,
      retransSegs: 77,
      sackRecovery: 61,
      dsackRecv: 61,
      lossProbes: 7,
      ofoQueue: 56,
    };
    const r = { outSegs: 122083, retransSegs: 10, sackRecovery: 6, dsackRecv: 7, lossProbes: 0, ofoQueue: 6 };
    expect(tcpCountersLine(c, r)).toBe(
      '  TCP (/proc/net, this namespace): 108812 segments sent, 56 out of order, 77 retransmitted, 61 SACK recoveries, 61 DSACKs, 7 loss probes while pvblk ran; 122083 segments sent, 6 out of order, 10 retransmitted, 6 SACK recoveries, 7 DSACKs, 0 loss probes while the relay ran',
    );
    expect(tcpCountersLine(c, null)).toMatch(/while pvblk ran$/);
    expect(tcpCountersLine(null, null)).toBeNull();
  });

  it.runIf(process.platform === 'linux')(
    "sees this machine's segments: a window over a loopback transfer counts them",
    async () => {
      // the window ends once the server has read every byte: the sender's end() comes when the kernel
      // has taken them, which under bbr's pacing on a busy machine was before most were sent (15
      // segments counted once)
      const total = 64 * 64 * 1024;
      let received = 0;
      let server!: Server;
      const all = new Promise<void>((done) => {
        server = createServer((s) =>
          s.on('data', (d: Buffer) => {
            received += d.length;
            if (received >= total) done();
          }),
        );
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const { port } = server.address() as AddressInfo;
      const w = new CpuWindows([process.pid]);
      await w.begin();
      const sock = connect(port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      // 4 MiB in 64 KiB writes: at least 64 segments whatever the MSS (loopback's is ≈ 64 KiB)
      const chunk = Buffer.alloc(64 * 1024, 7);
      for (let i = 0; i < 64; i++) sock.write(chunk);
      sock.end();
      await all;
      await w.end();
      server.close();
      const t = w.tcpCounters();
      expect(t).not.toBeNull();
      expect(t!.outSegs).toBeGreaterThanOrEqual(64);
      expect(await tcpCounters()).not.toBeNull();
    },
  );
});
