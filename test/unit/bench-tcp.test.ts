import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCongestionControl, tcpCongestionControl, tcpLine } from '../../src/cli/bench-tcp.ts';

const dir = mkdtempSync(join(tmpdir(), 'pvblk-tcp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sysctl(text: string): string {
  const f = join(dir, `cc-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  return f;
}

describe("bench: the kernel's TCP congestion control", () => {
  it('reads the name the sysctl holds, newline and all', () => {
    expect(tcpCongestionControl(sysctl('bbr\n'))).toBe('bbr');
    expect(tcpCongestionControl(sysctl('cubic\n'))).toBe('cubic');
  });

  it('says unknown (null) for a file that is missing or holds no name', () => {
    expect(tcpCongestionControl(join(dir, 'absent'))).toBeNull();
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
