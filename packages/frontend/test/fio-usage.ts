/**
 * What the fio tests ask of a refusal: the FioUsageError a call throws (or its lines, what fio says
 * on stderr); a call that throws none fails the test.
 */
import { FioUsageError } from '../src/guest/fio-parse.ts';

export function thrown(fn: () => unknown): FioUsageError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FioUsageError) return e;
    throw e;
  }
  throw new Error('no usage error');
}

export function usage(fn: () => unknown): string[] {
  return thrown(fn).lines;
}
