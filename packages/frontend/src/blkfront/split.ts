/**
 * Re-splitting a request to the limits of the connection it goes out on. The block layer builds
 * requests for the limits it was given (blkif_set_queue_limits); after a reconnect the new backend
 * may allow fewer segments (max indirect segments shrank, or indirect is gone), and Linux's
 * blkif_recover re-submits the bios through the block layer, which splits them again. Here the parts
 * share the original's completion: it completes once all parts have, with the worst status
 * (blkif_get_final_status: ERROR over EOPNOTSUPP over OKAY; a failed device over everything).
 */
import {
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_EPROTECTION,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  PI_TUPLE_SIZE,
  SECTOR_SIZE,
} from '@pvblk/shared';
import type { IntegrityResponseInfo } from '@pvblk/shared';
import type { BlockRequest, RequestIntegrity } from '../block/types.ts';
import type { Submission } from './queue.ts';

/** Worst first. */
const RANK = [BLKIF_RSP_ERROR, BLKIF_RSP_EPROTECTION, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_OKAY];

export function splitToLimits(sub: Submission, maxSegments: number): Submission[] {
  const req = sub.req;
  if ((req.op !== 'read' && req.op !== 'write') || req.segments.length <= maxSegments) return [sub];
  const total = req.segments.reduce((n, s) => n + s.len, 0);
  const pieces: BlockRequest[] = [];
  let sector = req.sector;
  let bytesBefore = 0;
  for (let i = 0; i < req.segments.length; i += maxSegments) {
    const segments = req.segments.slice(i, i + maxSegments);
    const bytes = segments.reduce((n, s) => n + s.len, 0);
    pieces.push({
      op: req.op,
      sector,
      segments,
      integrity: sliceIntegrity(req.integrity, bytesBefore, bytes, total),
    });
    sector += bytes / SECTOR_SIZE;
    bytesBefore += bytes;
  }
  // PI that cannot be cut at these boundaries travels with none of the parts
  const dropPi = req.integrity !== undefined && pieces.some((p) => p.integrity === undefined);
  let left = pieces.length;
  let worst: { status: number | null; info?: IntegrityResponseInfo; at: number } | null = null;
  let piDropped = dropPi;
  return pieces.map((piece) => {
    const part: BlockRequest = dropPi ? { ...piece, integrity: undefined } : piece;
    const offset = (part.sector - req.sector) | 0;
    return {
      req: part,
      done(status, info, dropped) {
        if (dropped) piDropped = true;
        if (worse(status, worst?.status)) worst = { status, info, at: offset };
        if (--left > 0) return;
        const w = worst!;
        const shifted = w.info ? { ...w.info, sectorOffset: w.info.sectorOffset + w.at } : undefined;
        sub.done(w.status, shifted, piDropped);
      },
    };
  });
}

function worse(a: number | null, b: number | null | undefined): boolean {
  if (b === undefined) return true;
  if (a === null) return b !== null;
  if (b === null) return false;
  const ra = RANK.indexOf(a);
  const rb = RANK.indexOf(b);
  return (ra < 0 ? 0 : ra) < (rb < 0 ? 0 : rb);
}

/**
 * The tuples covering `bytes` of data starting `from` bytes in (the ref seed moved on by the intervals
 * skipped), or undefined when the cut does not fall on an integrity interval.
 */
function sliceIntegrity(
  integ: RequestIntegrity | undefined,
  from: number,
  bytes: number,
  totalBytes: number,
): RequestIntegrity | undefined {
  if (!integ) return undefined;
  const n = integ.tuples.length / PI_TUPLE_SIZE;
  if (n === 0 || totalBytes % n !== 0) return undefined;
  const interval = totalBytes / n;
  if (from % interval !== 0 || bytes % interval !== 0) return undefined;
  const first = from / interval;
  return {
    ...integ,
    // a view: tuples a read brings back land in the original request's buffer
    tuples: integ.tuples.subarray(first * PI_TUPLE_SIZE, (first + bytes / interval) * PI_TUPLE_SIZE),
    refSeed: (integ.refSeed + first) >>> 0,
  };
}
