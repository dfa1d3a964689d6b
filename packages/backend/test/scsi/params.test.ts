import { describe, expect, it } from 'vitest';
import { isPvblkError } from '@pvblk/shared';
import {
  DEFAULT_SCSI_DEBUG_PARAMS,
  OPT_ALL_TSF,
  OPT_CMD_ABORT,
  OPT_DIF_ERR,
  OPT_DIX_ERR,
  OPT_HOST_BUSY,
  OPT_MAC_TIMEOUT,
  OPT_MEDIUM_ERR,
  OPT_NOISE,
  OPT_NO_CDB_NOISE,
  OPT_N_WCE,
  OPT_Q_NOISE,
  OPT_RARE_TSF,
  OPT_RECOVERED_ERR,
  OPT_RESET_NOISE,
  OPT_SHORT_TRANSFER,
  OPT_TIMEOUT,
  OPT_TRANSPORT_ERR,
  applyRuntimeParam,
  dixEnabled,
  formatScsiDebugParams,
  parseKernelInt,
  parseScsiDebugParams,
  storeBlocks,
  validateScsiDebugParams,
} from '../../src/scsi/index.ts';

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isPvblkError(e, 'EUSAGE')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected EUSAGE');
}

describe('scsi_debug parameters', () => {
  it('has scsi_debug’s opts bit values', () => {
    expect([
      OPT_NOISE,
      OPT_MEDIUM_ERR,
      OPT_TIMEOUT,
      OPT_RECOVERED_ERR,
      OPT_TRANSPORT_ERR,
      OPT_DIF_ERR,
      OPT_DIX_ERR,
      OPT_MAC_TIMEOUT,
      OPT_SHORT_TRANSFER,
      OPT_Q_NOISE,
      OPT_ALL_TSF,
      OPT_RARE_TSF,
      OPT_N_WCE,
      OPT_RESET_NOISE,
      OPT_NO_CDB_NOISE,
      OPT_HOST_BUSY,
      OPT_CMD_ABORT,
    ]).toEqual([
      1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000, 0x10000,
    ]);
  });

  it('defaults like scsi_debug', () => {
    const p = parseScsiDebugParams('');
    expect(p).toEqual(DEFAULT_SCSI_DEBUG_PARAMS);
    expect(p).toMatchObject({
      dev_size_mb: 8,
      sector_size: 512,
      dif: 0,
      dix: 0,
      guard: 0,
      ato: 1,
      opts: 0,
      every_nth: 0,
      medium_error_start: 0x1234,
      medium_error_count: 10,
      delay: 1,
      dsense: 0,
      host_name: 'sdg',
      hctl: '9:0:0:0',
    });
    expect(storeBlocks(p)).toBe(16384);
  });

  it('parses the seed string', () => {
    const p = parseScsiDebugParams('dif=1 opts=34');
    expect(p.dif).toBe(1);
    expect(p.opts).toBe(OPT_DIF_ERR | OPT_MEDIUM_ERR);
  });

  it('reads numbers like kstrtoint with base 0', () => {
    expect(parseKernelInt('34')).toBe(34);
    expect(parseKernelInt('0x22')).toBe(34);
    expect(parseKernelInt('0X22')).toBe(34);
    expect(parseKernelInt('042')).toBe(34);
    expect(parseKernelInt('0')).toBe(0);
    expect(parseKernelInt('-3')).toBe(-3);
    expect(parseKernelInt('+3')).toBe(3);
    expect(parseKernelInt('7\n')).toBe(7);
    expect(parseKernelInt('09')).toBeNull();
    expect(parseKernelInt('0x')).toBeNull();
    expect(parseKernelInt('1.5')).toBeNull();
    expect(parseKernelInt(' 1')).toBeNull();
    expect(parseKernelInt('2147483647')).toBe(2147483647);
    expect(parseKernelInt('2147483648')).toBeNull();
    expect(parseKernelInt('-2147483648')).toBe(-2147483648);
    expect(parseScsiDebugParams('opts=0x22 every_nth=-3 medium_error_start=0x64').opts).toBe(34);
    expect(parseScsiDebugParams('every_nth=-3').every_nth).toBe(-3);
    expect(parseScsiDebugParams('  dif=1\n\tdix=1  ').dix).toBe(1);
  });

  it('takes the last of repeated keys', () => {
    expect(parseScsiDebugParams('dif=1 dif=3').dif).toBe(3);
  });

  it('keeps dix as given but reads it as a boolean', () => {
    const p = parseScsiDebugParams('dix=7');
    expect(p.dix).toBe(7);
    expect(dixEnabled(p)).toBe(true);
    expect(dixEnabled(parseScsiDebugParams('dix=0'))).toBe(false);
  });

  it('raises dev_size_mb below 1 to 1, as scsi_debug_init() does', () => {
    expect(parseScsiDebugParams('dev_size_mb=0').dev_size_mb).toBe(1);
    expect(parseScsiDebugParams('dev_size_mb=-4').dev_size_mb).toBe(1);
  });

  it('names the parameter and the bad value in every error', () => {
    expect(usageError(() => parseScsiDebugParams('dif=7'))).toBe(
      'EUSAGE: disk parameter "dif": must be 0, 1, 2 or 3 (got 7)',
    );
    expect(usageError(() => parseScsiDebugParams('diff=1'))).toBe(
      'EUSAGE: unknown disk parameter "diff" (known: dev_size_mb, sector_size, dif, dix, guard, ato, opts, every_nth, medium_error_start, medium_error_count, delay, ndelay, dsense, lbpu, lbpws, lbprz, virtual_gb, host_name, hctl)',
    );
    expect(usageError(() => parseScsiDebugParams('sector_size=513'))).toBe(
      'EUSAGE: disk parameter "sector_size": must be 512, 1024, 2048 or 4096 (got 513)',
    );
    expect(usageError(() => parseScsiDebugParams('guard=2'))).toBe(
      'EUSAGE: disk parameter "guard": must be 0 (crc) or 1 (ip) (got 2)',
    );
    expect(usageError(() => parseScsiDebugParams('ato=2'))).toBe(
      'EUSAGE: disk parameter "ato": must be 0 or 1 (got 2)',
    );
    expect(usageError(() => parseScsiDebugParams('dsense=2'))).toBe(
      'EUSAGE: disk parameter "dsense": must be 0 or 1 (got 2)',
    );
    expect(usageError(() => parseScsiDebugParams('lbpu=3'))).toBe(
      'EUSAGE: disk parameter "lbpu": must be 0 or 1 (got 3)',
    );
    expect(usageError(() => parseScsiDebugParams('lbpws=-1'))).toBe(
      'EUSAGE: disk parameter "lbpws": must be 0 or 1 (got -1)',
    );
    expect(usageError(() => parseScsiDebugParams('lbprz=2'))).toBe(
      'EUSAGE: disk parameter "lbprz": must be 0 or 1 (got 2)',
    );
    expect(usageError(() => parseScsiDebugParams('delay=-1'))).toBe(
      'EUSAGE: disk parameter "delay": must be >= 0 (got -1)',
    );
    expect(usageError(() => parseScsiDebugParams('medium_error_start=-5'))).toBe(
      'EUSAGE: disk parameter "medium_error_start": must be >= 0 (got -5)',
    );
    expect(usageError(() => parseScsiDebugParams('medium_error_count=-1'))).toBe(
      'EUSAGE: disk parameter "medium_error_count": must be >= 0 (got -1)',
    );
    expect(usageError(() => parseScsiDebugParams('dif=abc'))).toBe(
      'EUSAGE: disk parameter "dif": not a 32-bit integer (got "abc")',
    );
    expect(usageError(() => parseScsiDebugParams('opts=4294967296'))).toBe(
      'EUSAGE: disk parameter "opts": not a 32-bit integer (got "4294967296")',
    );
    expect(usageError(() => parseScsiDebugParams('dif='))).toBe(
      'EUSAGE: disk parameter "dif": not a 32-bit integer (got "")',
    );
    expect(usageError(() => parseScsiDebugParams('dif'))).toBe(
      'EUSAGE: disk parameter "dif": expects dif=<value> (got "dif")',
    );
    expect(usageError(() => parseScsiDebugParams('host_name=xvda'))).toBe(
      'EUSAGE: disk parameter "host_name": must look like sdX (got "xvda")',
    );
    expect(usageError(() => parseScsiDebugParams('hctl=9:0:0'))).toBe(
      'EUSAGE: disk parameter "hctl": must be host:channel:target:lun (got "9:0:0")',
    );
    expect(usageError(() => validateScsiDebugParams({ dif: 4 as 0 }))).toBe(
      'EUSAGE: disk parameter "dif": must be 0, 1, 2 or 3 (got 4)',
    );
    expect(usageError(() => validateScsiDebugParams({ opts: 1.5 }))).toBe(
      'EUSAGE: disk parameter "opts": must be a 32-bit integer (got 1.5)',
    );
    expect(usageError(() => validateScsiDebugParams({ bogus: 1 } as never))).toMatch(
      /^EUSAGE: unknown disk parameter "bogus"/,
    );
  });

  it('formats parameters so they parse back', () => {
    const p = parseScsiDebugParams(
      'dif=3 dix=1 guard=1 opts=34 every_nth=-2 sector_size=4096 host_name=sdh hctl=2:0:1:0',
    );
    expect(parseScsiDebugParams(formatScsiDebugParams(p))).toEqual(p);
    expect(formatScsiDebugParams(parseScsiDebugParams('dif=1 opts=34'), { onlyChanged: true })).toBe(
      'dif=1 opts=0x22',
    );
    expect(formatScsiDebugParams(DEFAULT_SCSI_DEBUG_PARAMS)).toBe(
      'dev_size_mb=8 sector_size=512 dif=0 dix=0 guard=0 ato=1 opts=0x0 every_nth=0 medium_error_start=4660 medium_error_count=10 delay=1 ndelay=0 dsense=0 lbpu=0 lbpws=0 lbprz=1 virtual_gb=0 host_name=sdg hctl=9:0:0:0',
    );
  });

  it('changes only the runtime-writable parameters', () => {
    const p = parseScsiDebugParams('dif=1');
    expect(applyRuntimeParam(p, 'opts', '0x22').opts).toBe(34);
    expect(applyRuntimeParam(p, 'every_nth', -1).every_nth).toBe(-1);
    expect(applyRuntimeParam(p, 'medium_error_start', '100').medium_error_start).toBe(100);
    expect(applyRuntimeParam(p, 'medium_error_count', 3).medium_error_count).toBe(3);
    expect(applyRuntimeParam(p, 'delay', '0').delay).toBe(0);
    expect(applyRuntimeParam(p, 'dsense', '1').dsense).toBe(1);
    expect(applyRuntimeParam(p, 'virtual_gb', '1').virtual_gb).toBe(1);
    expect(p.opts).toBe(0);
    const fixed =
      'writable at runtime: opts, every_nth, delay, ndelay, dsense, medium_error_start, medium_error_count, virtual_gb';
    for (const key of ['dif', 'dix', 'sector_size', 'dev_size_mb', 'guard', 'ato', 'lbpws', 'host_name']) {
      expect(usageError(() => applyRuntimeParam(p, key, '1'))).toBe(
        `EUSAGE: disk parameter "${key}" is fixed while the disk exists (${fixed})`,
      );
    }
    expect(usageError(() => applyRuntimeParam(p, 'nope', '1'))).toMatch(
      /^EUSAGE: unknown disk parameter "nope"/,
    );
    expect(usageError(() => applyRuntimeParam(p, 'dsense', '5'))).toBe(
      'EUSAGE: disk parameter "dsense": must be 0 or 1 (got 5)',
    );
  });
});
