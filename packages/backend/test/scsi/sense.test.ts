import { describe, expect, it } from 'vitest';
import {
  ABORTED_COMMAND,
  ILLEGAL_REQUEST,
  MEDIUM_ERROR,
  RECOVERED_ERROR,
  ascText,
  buildSense,
  decodeSense,
  formatAddSense,
  formatSenseExtras,
  formatSenseKeyLine,
  senseInfo,
  senseKeyName,
} from '../../src/scsi/index.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('sense data', () => {
  it('builds the seed’s fixed-format medium error with the Info field', () => {
    const s = buildSense({ key: MEDIUM_ERROR, asc: 0x11, ascq: 0, info: 0x1234 });
    expect(s).toEqual(hex('F0 00 03 00 00 12 34 0A 00 00 00 00 11 00 00 00 00 00'));
    const h = decodeSense(s)!;
    expect(h).toEqual({
      responseCode: 0x70,
      key: 3,
      asc: 0x11,
      ascq: 0,
      additionalLength: 10,
      descriptor: false,
      deferred: false,
    });
    expect(senseInfo(s)).toBe(0x1234);
    expect(formatSenseKeyLine(h)).toBe('Sense Key : Medium Error [current]');
    expect(formatSenseExtras(s, h)).toEqual(['Info fld=0x1234']);
    expect(formatAddSense(h.asc, h.ascq)).toBe('Add. Sense: Unrecovered read error');
  });

  it('builds fixed format without the VALID bit when there is no Info', () => {
    const s = buildSense({ key: ABORTED_COMMAND, asc: 0x10, ascq: 1 });
    expect(s).toEqual(hex('70 00 0B 00 00 00 00 0A 00 00 00 00 10 01 00 00 00 00'));
    expect(senseInfo(s)).toBeNull();
    expect(formatSenseExtras(s, decodeSense(s)!)).toEqual([]);
  });

  it('builds descriptor format (dsense=1) without an information descriptor, as scsi_debug does', () => {
    const s = buildSense({ key: MEDIUM_ERROR, asc: 0x11, ascq: 0, descriptor: true });
    expect(s).toEqual(hex('72 03 11 00 00 00 00 00'));
    const h = decodeSense(s)!;
    expect(h.descriptor).toBe(true);
    expect(h.key).toBe(MEDIUM_ERROR);
    expect(senseInfo(s)).toBeNull();
    expect(formatSenseKeyLine(h)).toBe('Sense Key : Medium Error [current] [descriptor]');
    expect(formatSenseExtras(s, h)).toEqual([]);
  });

  it('reads the Information descriptor of descriptor-format sense and dumps descriptors', () => {
    const s = hex('72 03 11 00 00 00 00 0C 00 0A 80 00 00 00 00 00 00 00 12 34');
    expect(senseInfo(s)).toBe(0x1234);
    const h = decodeSense(s)!;
    expect(formatSenseExtras(s, h)).toEqual([
      'Descriptor sense data with sense descriptors (in hex):',
      '        72 03 11 00 00 00 00 0c 00 0a 80 00 00 00 00 00',
      '        00 00 12 34',
    ]);
  });

  it('marks deferred sense', () => {
    const h = decodeSense(buildSense({ key: MEDIUM_ERROR, asc: 0x11, ascq: 0, deferred: true }))!;
    expect(h.deferred).toBe(true);
    expect(formatSenseKeyLine(h)).toBe('Sense Key : Medium Error [deferred]');
  });

  it('rejects buffers that are not sense data', () => {
    expect(decodeSense(undefined)).toBeNull();
    expect(decodeSense(Buffer.alloc(0))).toBeNull();
    expect(decodeSense(hex('00 00 03'))).toBeNull();
  });

  it('names sense keys and additional sense codes like constants.c', () => {
    expect(senseKeyName(MEDIUM_ERROR)).toBe('Medium Error');
    expect(senseKeyName(ABORTED_COMMAND)).toBe('Aborted Command');
    expect(senseKeyName(ILLEGAL_REQUEST)).toBe('Illegal Request');
    expect(senseKeyName(RECOVERED_ERROR)).toBe('Recovered Error');
    expect(senseKeyName(0xf)).toBeNull();
    expect(ascText(0x11, 0)).toBe('Unrecovered read error');
    expect(ascText(0x10, 1)).toBe('Logical block guard check failed');
    expect(ascText(0x10, 2)).toBe('Logical block application tag check failed');
    expect(ascText(0x10, 3)).toBe('Logical block reference tag check failed');
    expect(ascText(0x5d, 0)).toBe('Failure prediction threshold exceeded');
    expect(ascText(0x4b, 3)).toBe('Ack/nak timeout');
    expect(ascText(0x20, 0)).toBe('Invalid command operation code');
    expect(ascText(0x21, 0)).toBe('Logical block address out of range');
    expect(ascText(0x24, 0)).toBe('Invalid field in cdb');
    expect(formatAddSense(0x7f, 0x01)).toBe('ASC=0x7f ASCQ=0x1');
    expect(formatAddSense(0x80, 0x01)).toBe('<<vendor>> ASC=0x80 ASCQ=0x1');
    expect(formatAddSense(0x10, 0x81)).toBe('ASC=0x10 <<vendor>> ASCQ=0x81');
  });
});
