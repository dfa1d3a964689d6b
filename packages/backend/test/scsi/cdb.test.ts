import { describe, expect, it } from 'vitest';
import { isPvblkError } from '@pvblk/shared';
import {
  chooseRwCdbSize,
  decodeCdb,
  decodeUnmapParams,
  encodeRw,
  encodeSynchronizeCache10,
  encodeUnmap,
  encodeWriteSame16,
  formatCdb,
  opcodeName,
} from '../../src/scsi/index.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('CDBs', () => {
  it('encodes the seed read: READ(10), RDPROTECT=001, LBA 0x1230, 8 blocks', () => {
    const cdb = encodeRw({ write: false, size: 10, lba: 0x1230, blocks: 8, protect: 1 });
    expect(cdb).toEqual(hex('28 20 00 00 12 30 00 00 08 00'));
    expect(formatCdb(cdb)).toBe('Read(10): 28 20 00 00 12 30 00 00 08 00');
  });

  it('leaves byte 1 zero without protection (dif=0)', () => {
    const cdb = encodeRw({ write: false, size: 10, lba: 0x1230, blocks: 8, protect: 0 });
    expect(formatCdb(cdb)).toBe('Read(10): 28 00 00 00 12 30 00 00 08 00');
  });

  it('puts WRPROTECT in byte 1 of WRITE(10)', () => {
    expect(encodeRw({ write: true, size: 10, lba: 0x1230, blocks: 8, protect: 1 })).toEqual(
      hex('2a 20 00 00 12 30 00 00 08 00'),
    );
    expect(formatCdb(encodeRw({ write: true, size: 10, lba: 1, blocks: 1, protect: 3, fua: true }))).toBe(
      'Write(10): 2a 68 00 00 00 01 00 00 01 00',
    );
  });

  it('encodes READ(16) and WRITE(16)', () => {
    const r = encodeRw({ write: false, size: 16, lba: 0x123456789, blocks: 0x10000, protect: 1 });
    expect(r).toEqual(hex('88 20 00 00 00 01 23 45 67 89 00 01 00 00 00 00'));
    expect(formatCdb(r)).toBe('Read(16): 88 20 00 00 00 01 23 45 67 89 00 01 00 00 00 00');
    const w = encodeRw({ write: true, size: 16, lba: 8, blocks: 8, protect: 0 });
    expect(formatCdb(w)).toBe('Write(16): 8a 00 00 00 00 00 00 00 00 08 00 00 00 08 00 00');
  });

  it('encodes READ(32)/WRITE(32) with RDPROTECT in byte 10 and the expected initial ref tag at 20–23', () => {
    const r = encodeRw({ write: false, size: 32, lba: 0x1230, blocks: 8, protect: 1, expectedRef: 0x1230 });
    expect(r).toEqual(
      hex('7f 00 00 00 00 00 00 18 00 09 20 00 00 00 00 00 00 00 12 30 00 00 12 30 00 00 00 00 00 00 00 08'),
    );
    expect(formatCdb(r)).toBe(
      'Read(32): 7f 00 00 00 00 00 00 18 00 09 20 00 00 00 00 00 00 00 12 30 00 00 12 30 00 00 00 00 00 00 00 08',
    );
    const w = encodeRw({ write: true, size: 32, lba: 2, blocks: 1, protect: 1, expectedRef: 16 });
    expect(opcodeName(w)).toBe('Write(32)');
    expect(w[9]).toBe(0x0b);
    expect(w.readUInt32BE(20)).toBe(16);
  });

  it('decodes what it encodes', () => {
    expect(decodeCdb(hex('28 20 00 00 12 30 00 00 08 00'))).toEqual({
      kind: 'rw',
      write: false,
      size: 10,
      lba: 0x1230,
      blocks: 8,
      protect: 1,
      fua: false,
    });
    expect(
      decodeCdb(encodeRw({ write: true, size: 16, lba: 2 ** 40, blocks: 70000, protect: 3 })),
    ).toMatchObject({
      kind: 'rw',
      write: true,
      size: 16,
      lba: 2 ** 40,
      blocks: 70000,
      protect: 3,
    });
    expect(
      decodeCdb(encodeRw({ write: true, size: 32, lba: 5, blocks: 2, protect: 1, expectedRef: 40 })),
    ).toMatchObject({
      kind: 'rw',
      write: true,
      size: 32,
      lba: 5,
      blocks: 2,
      protect: 1,
      expectedRef: 40,
    });
    expect(decodeCdb(encodeSynchronizeCache10())).toEqual({ kind: 'sync', lba: 0, blocks: 0 });
    expect(decodeCdb(encodeWriteSame16(16, 8, true))).toEqual({
      kind: 'write_same',
      unmap: true,
      lba: 16,
      blocks: 8,
      protect: 0,
    });
    expect(decodeCdb(hex('12 00 00 00 24 00'))).toEqual({ kind: 'unsupported', opcode: 0x12 });
    const varlen = Buffer.alloc(32);
    varlen[0] = 0x7f;
    varlen[7] = 0x18;
    varlen[9] = 0x0a;
    expect(decodeCdb(varlen)).toEqual({ kind: 'unsupported', opcode: 0x7f, serviceAction: 0x0a });
  });

  it('encodes SYNCHRONIZE CACHE(10), WRITE SAME(16) with UNMAP, and UNMAP', () => {
    expect(formatCdb(encodeSynchronizeCache10())).toBe(
      'Synchronize Cache(10): 35 00 00 00 00 00 00 00 00 00',
    );
    expect(formatCdb(encodeWriteSame16(0x10, 8, true))).toBe(
      'Write same(16): 93 08 00 00 00 00 00 00 00 10 00 00 00 08 00 00',
    );
    const u = encodeUnmap([{ lba: 0x20, blocks: 4 }]);
    expect(formatCdb(u.cdb)).toBe('Unmap/Read sub-channel: 42 00 00 00 00 00 00 00 18 00');
    expect(u.params).toEqual(hex('0016 0010 00000000 0000000000000020 00000004 00000000'));
    expect(decodeUnmapParams(u.params)).toEqual([{ lba: 0x20, blocks: 4 }]);
    expect(decodeUnmapParams(hex('0006 0003 00000000'))).toBeNull();
  });

  it('names opcodes like print_opcode_name()', () => {
    expect(opcodeName(hex('20 00 00 00 00 00 00 00 00 00'))).toBe('cdb[0]=0x20 (reserved)');
    expect(opcodeName(hex('c1 00 00 00 00 00'))).toBe('cdb[0]=0xc1 (vendor)');
    expect(formatCdb(hex('12 00 00 00 24 00'))).toBe('Inquiry: 12 00 00 00 24 00');
  });

  it('picks the CDB size sd picks', () => {
    const base = { lba: 0x1230, blocks: 8, protect: 1, protectionType: 1, capacityBlocks: 16384 };
    expect(chooseRwCdbSize(base)).toBe(10);
    expect(chooseRwCdbSize({ ...base, protect: 0, protectionType: 0 })).toBe(10);
    expect(chooseRwCdbSize({ ...base, protectionType: 2 })).toBe(32);
    // A Type 2 disk without PI in the command would take READ(10) (and scsi_debug would log
    // "Unprotected RD/WR to DIF device"), but sd always sets RDPROTECT when the host is DIF-capable.
    expect(chooseRwCdbSize({ ...base, protect: 0, protectionType: 2 })).toBe(10);
    expect(chooseRwCdbSize({ ...base, blocks: 0x10000 })).toBe(16);
    expect(chooseRwCdbSize({ ...base, capacityBlocks: 2 ** 32 + 1 })).toBe(16);
    expect(chooseRwCdbSize({ ...base, lba: 2 ** 32 })).toBe(16);
  });

  it('rejects fields that do not fit', () => {
    expect(() => encodeRw({ write: false, size: 10, lba: 2 ** 32, blocks: 1, protect: 0 })).toThrow(/lba/);
    expect(() => encodeRw({ write: false, size: 10, lba: 0, blocks: 0x10000, protect: 0 })).toThrow(/blocks/);
    try {
      encodeRw({ write: false, size: 10, lba: 0, blocks: 1, protect: 8 });
      throw new Error('no throw');
    } catch (e) {
      expect(isPvblkError(e, 'EINVAL')).toBe(true);
    }
  });
});
