import { errnoCode } from '../errors.js';
import type { Sql } from './db.js';
import { LeaseLost, QueueError } from './errors.js';
import { SCHEMA } from './schema.js';

/**
 * A job's output in the queue: `agent_async.output_pages`, one row per page of raw bytes
 * (bytea: process output split anywhere may cut a UTF-8 character, and may hold NULs), each
 * at a byte offset, so any host reads any range or the tail with one indexed statement and
 * `logs -f` follows from any host (the insert trigger notifies `agent_async_output`).
 * Appends are fenced by the holder's epoch and idempotent by offset: re-sending bytes that
 * are already stored (a retry after an unknown commit, a replay of the write-ahead buffer)
 * stores nothing twice.
 */
export const OUTPUT_PAGE_BYTES = 64 * 1024;

export interface OutputChunk {
  /** Where the returned bytes start (a negative request offset counts from the end). */
  offset: number;
  nextOffset: number;
  /** Bytes stored for the job so far. */
  size: number;
  eof: boolean;
  data: Buffer;
}

async function storedEnd(sql: Sql, id: string): Promise<{ end: number; epoch: number | null; exists: boolean }> {
  const result = await sql.query<{ lease_epoch: string | null; end_offset: string }>(
    `SELECT j.lease_epoch,
            coalesce((SELECT byte_offset + byte_length FROM ${SCHEMA}.output_pages WHERE job_id = j.id ORDER BY page DESC LIMIT 1), 0) AS end_offset
       FROM ${SCHEMA}.jobs j WHERE j.id = $1`,
    [id],
  );
  const row = result.rows[0];
  if (!row) return { end: 0, epoch: null, exists: false };
  return { end: Number(row.end_offset), epoch: row.lease_epoch === null ? null : Number(row.lease_epoch), exists: true };
}

async function insertPage(sql: Sql, id: string, epoch: number, offset: number, page: Buffer): Promise<boolean> {
  try {
    const result = await sql.query(
      `WITH holder AS (SELECT id FROM ${SCHEMA}.jobs WHERE id = $1 AND lease_epoch = $2 FOR SHARE),
            last AS (SELECT page, byte_offset + byte_length AS end_offset FROM ${SCHEMA}.output_pages
                      WHERE job_id = $1 ORDER BY page DESC LIMIT 1)
       INSERT INTO ${SCHEMA}.output_pages (job_id, page, byte_offset, byte_length, epoch, data)
       SELECT $1, coalesce((SELECT page FROM last) + 1, 0), $3, $4, $2, $5 FROM holder
        WHERE coalesce((SELECT end_offset FROM last), 0) = $3`,
      [id, epoch, offset, page.length, page],
    );
    return result.rowCount === 1;
  } catch (error) {
    if (errnoCode(error) === '23505') return false; // a concurrent append of the same holder won: re-check
    throw error;
  }
}

/**
 * Stores `data` as the job's output from byte `offset` on (the number of bytes the holder had
 * delivered before) and returns the new end. Bytes the queue already has are skipped; a gap
 * (offset beyond the stored end) is refused, and so is a holder whose epoch is stale.
 */
export async function appendOutput(sql: Sql, id: string, epoch: number, offset: number, data: Buffer): Promise<number> {
  let at = offset;
  let rest = data;
  while (rest.length > 0) {
    const page = rest.subarray(0, OUTPUT_PAGE_BYTES);
    if (await insertPage(sql, id, epoch, at, page)) {
      at += page.length;
      rest = rest.subarray(page.length);
      continue;
    }
    const stored = await storedEnd(sql, id);
    if (!stored.exists) throw new QueueError('queue_error', `job ${id} is not in the queue`);
    if (stored.epoch !== epoch) throw new LeaseLost('?', epoch, `job ${id} is held by epoch ${stored.epoch ?? 'none'} now`);
    if (stored.end < at) throw new QueueError('queue_error', `job ${id}: output gap: the queue has ${stored.end} bytes, an append at ${at} was refused`);
    const skip = Math.min(stored.end - at, rest.length);
    at += skip;
    rest = rest.subarray(skip);
  }
  return at;
}

/** Bytes stored for a job so far (0 for a job without output or unknown). */
export async function outputSize(sql: Sql, id: string): Promise<number> {
  return (await storedEnd(sql, id)).end;
}

/**
 * Up to `maxBytes` of a job's output from byte `offset` (negative: that many bytes before the
 * end, a tail). One statement; it touches only the pages that overlap the range.
 */
export async function readOutput(sql: Sql, id: string, offset: number, maxBytes: number): Promise<OutputChunk> {
  const limit = Math.max(1, Math.floor(maxBytes));
  const result = await sql.query<{ size: string; start: string; byte_offset: string | null; data: Buffer | null }>(
    `WITH s AS (SELECT coalesce((SELECT byte_offset + byte_length FROM ${SCHEMA}.output_pages
                                  WHERE job_id = $1 ORDER BY page DESC LIMIT 1), 0)::bigint AS size),
          b AS (SELECT size, CASE WHEN $2::bigint < 0 THEN greatest(0, size + $2::bigint) ELSE least($2::bigint, size) END AS start FROM s)
     SELECT b.size, b.start, p.byte_offset, p.data
       FROM b LEFT JOIN ${SCHEMA}.output_pages p
         ON p.job_id = $1 AND p.byte_offset < b.start + $3::bigint AND p.byte_offset > b.start - $4::bigint
        AND p.byte_offset + p.byte_length > b.start
      ORDER BY p.page`,
    [id, Math.floor(offset), limit, OUTPUT_PAGE_BYTES * 4],
  );
  const first = result.rows[0];
  const size = Number(first?.size ?? 0);
  const start = Number(first?.start ?? 0);
  const pieces: Buffer[] = [];
  for (const row of result.rows) {
    if (row.data === null || row.byte_offset === null) continue;
    const pageStart = Number(row.byte_offset);
    pieces.push(row.data.subarray(Math.max(0, start - pageStart), Math.max(0, start + limit - pageStart)));
  }
  const data = Buffer.concat(pieces).subarray(0, limit);
  return { offset: start, nextOffset: start + data.length, size, eof: start + data.length >= size, data };
}
