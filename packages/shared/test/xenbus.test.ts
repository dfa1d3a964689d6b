import { describe, expect, it } from 'vitest';
import {
  backendPath,
  domainPath,
  vbdBackendDir,
  vbdFrontendDir,
  diskIndex,
  diskLetters,
  frontendPath,
  parseXenbusState,
  parseXsBool,
  parseXsUint,
  ringRefKey,
  xenbusStateName,
  xvdDevid,
  xvdName,
} from '../src/xenbus.ts';
import {
  decodeGrantEntryV1,
  encodeGrantEntryV1,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  grantBusy,
  gntstMessage,
  gntstName,
  GNTST,
} from '../src/grant.ts';

describe('xenbus', () => {
  it('names states 0-8', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map(xenbusStateName)).toEqual([
      'Unknown',
      'Initialising',
      'InitWait',
      'Initialised',
      'Connected',
      'Closing',
      'Closed',
      'Reconfiguring',
      'Reconfigured',
    ]);
  });
  it('parses state values strictly and says why a bad one is bad', () => {
    expect(parseXenbusState('4')).toEqual({ ok: true, value: 4 });
    expect(parseXenbusState('9')).toEqual({ ok: false, error: 'state: 9 is out of range (max 8)' });
    expect(parseXenbusState('04')).toEqual({ ok: false, error: 'state: "04" is not a decimal number' });
    expect(parseXenbusState(' 4')).toMatchObject({ ok: false });
    expect(parseXenbusState(null)).toEqual({ ok: false, error: 'state: missing' });
    expect(parseXsUint('4294967296', 'sectors')).toMatchObject({ ok: false });
    expect(parseXsUint('18446744073709551615', 'sectors', Number.MAX_SAFE_INTEGER)).toMatchObject({
      ok: false,
    });
    expect(parseXsBool(undefined, 'feature-persistent', true)).toEqual({ ok: true, value: true });
    expect(parseXsBool('yes', 'feature-persistent')).toMatchObject({ ok: false });
  });
  it('encodes virtual-device numbers (xvda = 51712)', () => {
    expect(xvdDevid(0)).toBe(51712);
    expect(xvdDevid(1)).toBe(51728);
    expect(xvdName(51712)).toBe('xvda');
    expect(xvdName(51728)).toBe('xvdb');
    expect(xvdName(51713)).toBeNull(); // xvda1, a partition
    expect(xvdName(xvdDevid(16))).toBe('xvdq');
    expect(xvdName(xvdDevid(26))).toBe('xvdaa');
    // the extended form's last disk and partition, and nothing past them: a disk of 2^20 would
    // shift into the form's flag bits
    expect(xvdDevid((1 << 20) - 1, 255)).toBe((1 << 28) | (0xfffff << 8) | 255);
    expect(() => xvdDevid(1 << 20)).toThrow(/xvd disk 1048576 is outside 0\.\.1048575/);
    expect(() => xvdDevid(2 ** 24)).toThrow(RangeError);
    expect(() => xvdDevid(0, 256)).toThrow(/partition 256/);
    expect(() => xvdDevid(-1)).toThrow(RangeError);
    expect(() => xvdDevid(1.5)).toThrow(RangeError);
  });
  it('names disks with letters and reads them back', () => {
    for (const [n, s] of [
      [0, 'a'],
      [25, 'z'],
      [26, 'aa'],
      [701, 'zz'],
      [702, 'aaa'],
      [(1 << 20) - 1, 'bgqcv'],
    ] as const) {
      expect(diskLetters(n)).toBe(s);
      expect(diskIndex(s)).toBe(n);
    }
    for (const bad of ['', 'A', 'a1', 'xvd1', 'aaaaaaa', ' a']) expect(diskIndex(bad), bad).toBeNull();
  });
  it('builds the vbd paths and ring-ref keys', () => {
    expect(frontendPath(3, 51712)).toBe('/local/domain/3/device/vbd/51712');
    expect(backendPath(0, 3, 51712)).toBe('/local/domain/0/backend/vbd/3/51712');
    expect(domainPath(7)).toBe('/local/domain/7');
    expect(vbdFrontendDir(3)).toBe('/local/domain/3/device/vbd');
    expect(vbdBackendDir(5)).toBe('/local/domain/5/backend/vbd');
    expect(ringRefKey(false, 0)).toBe('ring-ref');
    expect(ringRefKey(true, 3)).toBe('ring-ref3');
    // ring-page-order present with value 0: one page, named ring-ref0
    expect(ringRefKey(true, 0)).toBe('ring-ref0');
  });
});

describe('grant entries v1', () => {
  it('lay out flags @0, domid @2, frame @4', () => {
    const b = Buffer.alloc(8);
    encodeGrantEntryV1(b, 0, { flags: GTF_permit_access | GTF_readonly, domid: 0, frame: 0x12345 });
    expect(b.toString('hex')).toBe('0500000045230100');
    expect(decodeGrantEntryV1(b, 0)).toEqual({ flags: 5, domid: 0, frame: 0x12345 });
    expect(grantBusy(GTF_permit_access | GTF_reading)).toBe(true);
    expect(grantBusy(GTF_permit_access | GTF_readonly)).toBe(false);
  });
  it('name statuses as Xen does', () => {
    expect(gntstName(GNTST.permission_denied)).toBe('GNTST_permission_denied');
    expect(gntstMessage(GNTST.bad_copy_arg)).toBe('copy arguments cross page boundary');
    expect(gntstMessage(GNTST.general_error)).toBe('undefined error');
  });
});
