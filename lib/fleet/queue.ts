import { IllegalTransition, isTerminal, parseJobState, transition, type JobState, type Transition } from '../spool/state.js';
import { LeaseLost, QueueError } from './errors.js';
import type { FleetDb, Sql } from './db.js';
import type { Requirements } from './match.js';
import { SCHEMA } from './schema.js';

/**
 * Jobs in the queue: a row of `agent_async.jobs` holds the job's whole state (the same JSON as
 * state.json), what it needs (agent, host, labels, features), who holds it (runner host and lease
 * epoch, the fencing token) and the cancel and done requests addressed to its holder.
 *
 * Every change to `state` goes through `transition()` of the spool's state machine and is
 * written with a compare-and-set on `seq` and the holder's epoch: a holder whose lease was
 * taken over gets `LeaseLost` and changes nothing.
 */
export interface FleetJob {
  state: JobState;
  needs: Requirements;
  submittedHost: string;
  /** The host of the runner that claimed it (kept after the end, for the record). */
  runnerHost: string | null;
  /** The claim's fencing token: the holder's lease epoch; null while unclaimed and after a loss. */
  leaseEpoch: number | null;
  /** Number of claims so far; the start transition records it as `attempt`. */
  claimAttempt: number;
  cancelRequest: { at: string; by: string | null } | null;
  doneRequest: { at: string; summary: string } | null;
}

export const JOB_COLUMNS = `id, state, agent, host, labels, features, submitted_host, runner_host, lease_epoch, claim_attempt,
  cancel_requested_at, cancel_requested_by, done_requested_at, done_summary`;

export interface JobRow {
  id: string;
  state: unknown;
  agent: string;
  host: string | null;
  labels: string[];
  features: string[];
  submitted_host: string;
  runner_host: string | null;
  lease_epoch: string | null;
  claim_attempt: number;
  cancel_requested_at: Date | null;
  cancel_requested_by: string | null;
  done_requested_at: Date | null;
  done_summary: string | null;
}

export class CorruptJob extends Error {
  constructor(readonly jobId: string, readonly reason: string) {
    super(`job ${jobId}: its state in the queue ${reason}`);
    this.name = 'CorruptJob';
  }
}

export function toFleetJob(row: JobRow): FleetJob {
  const parsed = parseJobState(row.state);
  if (!parsed.ok) throw new CorruptJob(row.id, parsed.reason);
  return {
    state: parsed.state,
    needs: { agent: row.agent, host: row.host, labels: row.labels, features: row.features },
    submittedHost: row.submitted_host,
    runnerHost: row.runner_host,
    leaseEpoch: row.lease_epoch === null ? null : Number(row.lease_epoch),
    claimAttempt: row.claim_attempt,
    cancelRequest: row.cancel_requested_at ? { at: row.cancel_requested_at.toISOString(), by: row.cancel_requested_by } : null,
    doneRequest: row.done_requested_at ? { at: row.done_requested_at.toISOString(), summary: row.done_summary ?? '' } : null,
  };
}

const FILE_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;

export interface SubmitRequest {
  state: JobState;
  needs: Requirements;
  submittedHost: string;
  /** Files the runner needs, e.g. prompt.txt (stored in `agent_async.job_files`). */
  files?: Record<string, string | Buffer>;
}

/** Inserts a new pending job and its files in one statement; the insert trigger wakes runners. */
export async function submitJob(db: FleetDb, request: SubmitRequest): Promise<FleetJob> {
  const { state, needs } = request;
  if (state.status !== 'pending' || state.seq !== 0) throw new Error(`job ${state.id}: only a new pending job can be submitted`);
  if (needs.agent !== state.request.agent) throw new Error(`job ${state.id}: needs.agent ${needs.agent} differs from request.agent ${state.request.agent}`);
  const files = Object.entries(request.files ?? {});
  for (const [name] of files) if (!FILE_NAME.test(name)) throw new Error(`job file name ${JSON.stringify(name)} is not allowed`);
  const inserted = await db.query<JobRow>(
    `WITH job AS (
       INSERT INTO ${SCHEMA}.jobs (id, status, seq, state, agent, host, labels, features, submitted_host)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${JOB_COLUMNS}),
     files AS (
       INSERT INTO ${SCHEMA}.job_files (job_id, name, data)
       SELECT job.id, file.name, file.data FROM job, unnest($10::text[], $11::bytea[]) AS file (name, data))
     SELECT * FROM job`,
    [
      state.id, state.status, state.seq, state, needs.agent, needs.host, needs.labels, needs.features, request.submittedHost,
      files.map(([name]) => name), files.map(([, data]) => Buffer.from(data)),
    ],
  );
  return toFleetJob(inserted.rows[0]!);
}

export async function getJob(sql: Sql, id: string): Promise<FleetJob | null> {
  const result = await sql.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.jobs WHERE id = $1`, [id]);
  const row = result.rows[0];
  return row ? toFleetJob(row) : null;
}

export type FleetSnapshot =
  | { id: string; kind: 'ok'; job: FleetJob }
  | { id: string; kind: 'missing' }
  | { id: string; kind: 'corrupt'; reason: string };

/** Reads several jobs in one statement; each id is answered, in the order given. */
export async function readJobs(sql: Sql, ids: readonly string[]): Promise<FleetSnapshot[]> {
  const result = await sql.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.jobs WHERE id = ANY($1::text[])`, [ids]);
  const byId = new Map(result.rows.map((row) => [row.id, row]));
  return ids.map((id): FleetSnapshot => {
    const row = byId.get(id);
    if (!row) return { id, kind: 'missing' };
    try {
      return { id, kind: 'ok', job: toFleetJob(row) };
    } catch (error) {
      return { id, kind: 'corrupt', reason: (error as CorruptJob).reason };
    }
  });
}

export async function readJobFile(sql: Sql, id: string, name: string): Promise<Buffer | null> {
  const result = await sql.query<{ data: Buffer }>(`SELECT data FROM ${SCHEMA}.job_files WHERE job_id = $1 AND name = $2`, [id, name]);
  return result.rows[0]?.data ?? null;
}

/** Stores (or replaces) a file of a job its holder produced, e.g. changes.patch; fenced by the epoch. */
export async function writeJobFile(sql: Sql, id: string, epoch: number, name: string, data: string | Buffer): Promise<void> {
  if (!FILE_NAME.test(name)) throw new Error(`job file name ${JSON.stringify(name)} is not allowed`);
  const result = await sql.query(
    `WITH holder AS (SELECT id FROM ${SCHEMA}.jobs WHERE id = $1 AND lease_epoch = $2 FOR SHARE)
     INSERT INTO ${SCHEMA}.job_files (job_id, name, data) SELECT id, $3, $4 FROM holder
     ON CONFLICT (job_id, name) DO UPDATE SET data = EXCLUDED.data`,
    [id, epoch, name, Buffer.from(data)],
  );
  if (result.rowCount === 0) throw await fencedOrMissing(sql, id, epoch);
}

async function fencedOrMissing(sql: Sql, id: string, epoch: number): Promise<Error> {
  const current = await getJob(sql, id);
  if (!current) return new QueueError('queue_error', `job ${id} is not in the queue`);
  return new LeaseLost(current.runnerHost ?? '?', epoch, `job ${id} is held by epoch ${current.leaseEpoch ?? 'none'} now (${current.state.status})`);
}

export interface TransitionOptions {
  /** The holder's epoch (null: the job must be unclaimed, e.g. cancelling a pending job). */
  epoch: number | null;
  change: Transition;
  /** When it happened (a delivery from the write-ahead buffer keeps the real time). */
  at?: Date;
  /** The job as last read, to save a read when it is still current. */
  current?: FleetJob;
  /** Drop the claim with this write (a reaper recording a lost runner's job). */
  releaseLease?: boolean;
}

const MAX_CAS_ATTEMPTS = 5;

/**
 * Applies one named transition to a job held by `epoch` and writes it with a compare-and-set
 * on `seq`. Throws `LeaseLost` when the job is no longer held by that epoch (the holder must
 * stop), `IllegalTransition` when the state machine refuses the change.
 */
export async function transitionJob(sql: Sql, id: string, options: TransitionOptions): Promise<FleetJob> {
  let current = options.current;
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt += 1) {
    current ??= (await getJob(sql, id)) ?? undefined;
    if (!current) throw new QueueError('queue_error', `job ${id} is not in the queue`);
    if (current.leaseEpoch !== options.epoch) {
      if (options.epoch === null) throw new IllegalTransition(current.state.status, options.change.name);
      throw new LeaseLost(current.runnerHost ?? '?', options.epoch, `job ${id} is held by epoch ${current.leaseEpoch ?? 'none'} now (${current.state.status})`);
    }
    const next = transition(current.state, options.change, options.at);
    const result = await sql.query<JobRow>(
      `UPDATE ${SCHEMA}.jobs
          SET state = $4, status = $5, seq = $6, updated_at = clock_timestamp(),
              finished_at = CASE WHEN $7 THEN clock_timestamp() ELSE finished_at END,
              lease_epoch = CASE WHEN $8 THEN NULL ELSE lease_epoch END
        WHERE id = $1 AND seq = $2 AND lease_epoch IS NOT DISTINCT FROM $3
        RETURNING ${JOB_COLUMNS}`,
      [id, current.state.seq, options.epoch, next, next.status, next.seq, isTerminal(next.status), options.releaseLease === true],
    );
    const row = result.rows[0];
    if (row) return toFleetJob(row);
    current = undefined; // changed meanwhile: read again and re-decide
  }
  throw new QueueError('queue_error', `job ${id}: gave up writing after ${MAX_CAS_ATTEMPTS} concurrent changes`, true);
}

export type CancelResult =
  | { result: 'cancelled'; job: FleetJob }
  | { result: 'requested'; job: FleetJob }
  | { result: 'already_finished'; job: FleetJob };

/**
 * Cancels a job from any host. A pending job nobody has claimed is cancelled at once;
 * otherwise the request is recorded for its holder (the trigger notifies it), which stops
 * the worker and records `cancelled`.
 */
export async function requestCancel(db: FleetDb, id: string, by: string): Promise<CancelResult> {
  for (;;) {
    const current = await getJob(db, id);
    if (!current) throw new QueueError('queue_error', `job ${id} is not in the queue`);
    if (isTerminal(current.state.status)) return { result: 'already_finished', job: current };
    if (current.state.status === 'pending' && current.leaseEpoch === null) {
      try {
        const job = await transitionJob(db, id, { epoch: null, current, change: { name: 'cancel_pending', attempt: current.claimAttempt } });
        return { result: 'cancelled', job };
      } catch (error) {
        if (error instanceof IllegalTransition) continue; // claimed meanwhile: ask its holder
        throw error;
      }
    }
    const flagged = await db.query<JobRow>(
      `UPDATE ${SCHEMA}.jobs SET cancel_requested_at = coalesce(cancel_requested_at, clock_timestamp()),
              cancel_requested_by = coalesce(cancel_requested_by, $2), updated_at = clock_timestamp()
        WHERE id = $1 AND status IN ('pending', 'running') RETURNING ${JOB_COLUMNS}`,
      [id, by],
    );
    const row = flagged.rows[0];
    if (row) return { result: 'requested', job: toFleetJob(row) };
  }
}

/** Records "finished" for a running job's holder (the `done` file / agent_notify_done from any host). */
export async function requestDone(db: FleetDb, id: string, summary: string): Promise<FleetJob | null> {
  const result = await db.query<JobRow>(
    `UPDATE ${SCHEMA}.jobs SET done_requested_at = coalesce(done_requested_at, clock_timestamp()),
            done_summary = coalesce(done_summary, $2), updated_at = clock_timestamp()
      WHERE id = $1 AND status = 'running' RETURNING ${JOB_COLUMNS}`,
    [id, summary],
  );
  const row = result.rows[0];
  return row ? toFleetJob(row) : null;
}

export interface ListQuery {
  status?: JobState['status'];
  limit: number;
  /** Newest first, starting below this id (paging). */
  beforeId?: string;
}

/** Jobs newest first (ids sort by creation time). */
export async function listJobs(sql: Sql, query: ListQuery): Promise<FleetJob[]> {
  const result = await sql.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.jobs
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [query.status ?? null, query.beforeId ?? null, query.limit],
  );
  return result.rows.map(toFleetJob);
}

/** Ids of every job pending or running, oldest first. */
export async function activeJobIds(sql: Sql): Promise<string[]> {
  const result = await sql.query<{ id: string }>(`SELECT id FROM ${SCHEMA}.jobs WHERE status IN ('pending', 'running') ORDER BY id`);
  return result.rows.map((row) => row.id);
}

/** Finished jobs that ended before the cutoff and whose snapshot was pushed to a remote (their refs there go with them). */
export async function finishedJobsWithRemote(sql: Sql, olderThanMs: number): Promise<FleetJob[]> {
  const result = await sql.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.jobs
      WHERE finished_at IS NOT NULL AND finished_at < clock_timestamp() - $1::float8 * interval '1 millisecond'
        AND state->'request'->'worktree' ? 'remote_url'`,
    [olderThanMs],
  );
  return result.rows.map(toFleetJob);
}

/** Removes finished jobs (with their output pages, files and events) that ended before the cutoff, but those in `keep`. */
export async function deleteFinishedJobs(sql: Sql, olderThanMs: number, keep: readonly string[] = []): Promise<number> {
  const result = await sql.query(
    `DELETE FROM ${SCHEMA}.jobs WHERE finished_at IS NOT NULL AND finished_at < clock_timestamp() - $1::float8 * interval '1 millisecond'
        AND NOT (id = ANY($2::text[]))`,
    [olderThanMs, keep],
  );
  await sql.query(`DELETE FROM ${SCHEMA}.events WHERE job_id IS NULL AND at < clock_timestamp() - $1::float8 * interval '1 millisecond'`, [olderThanMs]);
  return result.rowCount ?? 0;
}
