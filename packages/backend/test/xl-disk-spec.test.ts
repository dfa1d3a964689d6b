/**
 * xl's disk specification parser against Xen's own test vectors (tools/xl/check-xl-disk-parse, kept
 * verbatim in fixtures/check-xl-disk-parse.json with their provenance), then pvblk's rules for what it
 * can attach and the vdev numbering of xen-vbd-interface(7).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkPvblkDisk,
  diskToJson,
  DiskSpecError,
  MAX_ERRORS,
  parseDiskSpec,
  QUOTE_MAX,
  vdevNumber,
} from '../src/xl-disk-spec.ts';

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/check-xl-disk-parse.json', import.meta.url), 'utf8'),
) as { provenance: string; cases: Array<{ rc: number; args: string[]; stdout: string }> };

/** What `xl -N block-attach 0 <args>` prints and returns. */
function dryRun(args: string[]): { rc: number; stdout: string } {
  try {
    return { rc: 0, stdout: `disk: ${diskToJson(parseDiskSpec(args))}\n` };
  } catch (e) {
    if (e instanceof DiskSpecError) return { rc: 1, stdout: '' };
    throw e;
  }
}

describe("xl's disk specification (check-xl-disk-parse)", () => {
  it('the fixture is the real test data (28 cases)', () => {
    expect(fixture.provenance).toMatch(
      /^xen-project\/xen tools\/xl\/check-xl-disk-parse at commit [0-9a-f]{40}/,
    );
    expect(fixture.cases).toHaveLength(28);
  });
  for (const c of fixture.cases) {
    it(`xl -N block-attach 0 ${c.args.map((a) => JSON.stringify(a)).join(' ')}`, () => {
      const got = dryRun(c.args);
      expect(got.rc).toBe(c.rc);
      expect(got.stdout.split('\n')).toEqual(c.stdout.split('\n'));
    });
  }
});

describe("xl's parse errors, worded as xlu__disk_err", () => {
  const error = (args: string[]) => {
    try {
      parseDiskSpec(args);
    } catch (e) {
      return (e as DiskSpecError).lines;
    }
    throw new Error('parsed');
  };
  it('no vdev, no target, unknown access, unknown parameter, too many positionals', () => {
    expect(error(['foo'])).toEqual([
      "command line: config parsing error in disk specification: no vdev specified in `foo'",
    ]);
    expect(error(['vdev=xvdb'])).toEqual([
      "command line: config parsing error in disk specification: no target specified (and device not removable) in `vdev=xvdb'",
    ]);
    expect(error(['vdev=xvdb, access=rx, target=/dev/sdh'])).toEqual([
      "command line: config parsing error in disk specification: unknown value for access: near `rx' in `vdev=xvdb, access=rx, target=/dev/sdh'",
    ]);
    expect(error(['vdev=xvdb, size=1, target=/dev/sdh'])[0]).toBe(
      "command line: config parsing error in disk specification: unknown parameter: near `size=1,' in `vdev=xvdb, size=1, target=/dev/sdh'",
    );
    expect(error(['/dev/sdh,raw,xvdb,w,x'])[0]).toBe(
      "command line: config parsing error in disk specification: too many positional parameters: near `x' in `/dev/sdh,raw,xvdb,w,x'",
    );
    expect(error(['vdev=xvdb, vdev=xvdc, target=/dev/sdh'])[0]).toContain('vdev respecified');
    expect(error(['foo:/dev/sdh,xvdb'])[0]).toContain('unknown deprecated disk prefix');
  });
});

describe("pvblk's rules for what it attaches", () => {
  const pv = (spec: string) => checkPvblkDisk(parseDiskSpec([spec]));
  it('a host disk by path or name, a new scsi_debug disk, access and discard', () => {
    expect(pv('vdev=xvdb, access=rw, target=/dev/sdh')).toEqual({
      vdev: 'xvdb',
      devid: 51728,
      target: { kind: 'disk', path: '/dev/sdh' },
      mode: 'w',
      discard: true,
      trusted: true,
      cdrom: false,
    });
    expect(pv('sdh,,xvdc,ro').target).toEqual({ kind: 'disk', path: '/dev/sdh' });
    expect(pv('sdh,,xvdc,ro').mode).toBe('r');
    expect(pv('phy:/dev/sdi,xvdd,w').devid).toBe(51760);
    expect(pv('no-discard, vdev=xvdb, target=scsi_debug:dev_size_mb=16 dif=1')).toMatchObject({
      target: { kind: 'scsi_debug', params: 'dev_size_mb=16 dif=1' },
      discard: false,
    });
    expect(pv('scsi_debug:,,xvdb').target).toEqual({ kind: 'scsi_debug', params: '' });
  });
  it('refuses what pvblk has no backend for, naming the parameter', () => {
    expect(() => pv('vdev=xvdb, format=qcow2, target=/dev/sdh')).toThrow(
      /format=qcow2: pvblk's disks are raw/,
    );
    expect(() => pv('vdev=xvdb, backendtype=qdisk, target=/dev/sdh')).toThrow(/backendtype=qdisk/);
    expect(() => pv('vdev=xvdb, backend=driverdom, target=/dev/sdh')).toThrow(/no driver domains/);
    expect(() => pv('vdev=hdb, target=/dev/sdh')).toThrow(/whole xvd disks only/);
    expect(() => pv('vdev=xvdb1, target=/dev/sdh')).toThrow(/whole xvd disks only/);
    expect(() => pv('vdev=bogus, target=/dev/sdh')).toThrow(
      /Invalid or unsupported virtual disk identifier bogus/,
    );
    expect(() => pv('vdev=xvdb, target=/srv/img.raw')).toThrow(/a host disk \(\/dev\/sdX\)/);
    expect(() => pv('iscsi:iqn.x,xvdb,w')).toThrow(/script=block-iscsi/);
  });
});

describe('vdev numbers (xen-vbd-interface(7), libxl__device_disk_dev_number)', () => {
  it('xvd, dNpM, numbers, hd and sd', () => {
    expect(vdevNumber('xvda')?.devid).toBe(51712);
    expect(vdevNumber('xvdb')?.devid).toBe(51728);
    expect(vdevNumber('xvdp')?.devid).toBe(51952);
    expect(vdevNumber('xvdq')?.devid).toBe((1 << 28) | (16 << 8));
    expect(vdevNumber('xvda1')?.devid).toBe(51713);
    expect(vdevNumber('d0p0')?.devid).toBe(51712);
    expect(vdevNumber('51728')?.devid).toBe(51728);
    expect(vdevNumber('hda')?.devid).toBe(768);
    expect(vdevNumber('hdc')?.devid).toBe(5632);
    expect(vdevNumber('sdb')?.devid).toBe(2064);
    expect(vdevNumber('xvd')).toBeNull();
    expect(vdevNumber('vda')).toBeNull();
    // the extended form's last disk (2^20 - 1) and partition; one disk more has no number
    expect(vdevNumber('xvdbgqcv255')?.devid).toBe((1 << 28) | (0xfffff << 8) | 255);
    expect(vdevNumber('xvdbgqcw')).toBeNull();
    expect(vdevNumber('xvdbgqcv256')).toBeNull();
    expect(vdevNumber('d1048576p0')).toBeNull();
    expect(vdevNumber('xvdzzzzzzzzzzzz')).toBeNull();
  });
});

describe('a spec with many errors (xl prints each as it goes; pvblk collects a bounded list)', () => {
  const error = (spec: string) => {
    try {
      parseDiskSpec([spec]);
    } catch (e) {
      return e as Error;
    }
    throw new Error('parsed');
  };
  it('16000 unknown parameters: the first MAX_ERRORS, each quoting the spec cut short, then a count', () => {
    const spec = 'a=b,'.repeat(16000);
    const e = error(spec);
    // before the bound, joining 16000 copies of the 64000-character spec threw a RangeError
    expect(e).toBeInstanceOf(DiskSpecError);
    const { lines } = e as DiskSpecError;
    expect(lines).toHaveLength(MAX_ERRORS + 1);
    expect(lines[0]).toBe(
      "command line: config parsing error in disk specification: unknown parameter: near `a=b,' in " +
        `\`${spec.slice(0, QUOTE_MAX)}… (${spec.length - QUOTE_MAX} more characters)'`,
    );
    expect(lines.at(-1)).toBe(
      `command line: config parsing error in disk specification: ${16000 - MAX_ERRORS} more errors not shown`,
    );
    for (const l of lines) expect(l.length).toBeLessThan(2 * QUOTE_MAX + 200);
    // no count line when there are no more
    expect((error('a=b,'.repeat(MAX_ERRORS)) as DiskSpecError).lines).toHaveLength(MAX_ERRORS);
  });
  it('a long erroneous token is cut short too, and the message still says what was wrong', () => {
    const e = error(`vdev=xvdb,=${'y'.repeat(100_000)}`) as DiskSpecError;
    expect(e.lines).toHaveLength(1);
    expect(e.lines[0]).toMatch(
      /^command line: config parsing error in disk specification: bad disk syntax: near `=y+… \(99745 more characters\)' in `vdev=xvdb,=y+… \(99755 more characters\)'$/,
    );
    expect(e.message.length).toBeLessThan(2 * QUOTE_MAX + 200);
  });
});
