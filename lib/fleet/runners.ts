import type { JobState, Outcome } from '../spool/state.js';
import type { FleetDb, Sql } from './db.js';
import { LeaseLost, QueueError, SQLSTATE_LEASE_LOST } from './errors.js';
import { RUNNER_FEATURES, validateHostName, validateLabels, whyPending, type PendingReason, type RunnerView } from './match.js';
import { JOB_COLUMNS, toFleetJob, transitionJob, type FleetJob, type JobRow } from './queue.js';
import { SCHEMA } from './schema.js';

/**
 * Runners and their leases. Each host's runner owns one row of `agent_async.runners`, keyed
 * by its host name, with a lease that expires by the database clock unless renewed and an
 * epoch drawn from one global sequence: the fencing token that every later write of that
 * runner carries. Any process may reap an expired lease: the row gets a new epoch (so the old
 * one is refused everywhere), its claimed-but-not-started jobs go back to the queue and its
 * running jobs end `error`/`runner_lost`. A runner that comes back before anyone reaped it
 * keeps everything (its heartbeat succeeds); a new runner process on the same host that
 * registers while the old lease is still unreaped adopts the old epoch's jobs (see
 * `registerRunner`).
 */
export interface LeaseToken {
  host: string;
  epoch: number;
  leaseMs: number;
}

export interface RunnerRegistration {
  host: string;
  pid: number;
  agents: string[];
  labels?: string[];
  capacity: number;
  leaseMs: number;
  version: string;
  /** Facts for `status` and `doctor` (process start time, spool folder...). */
  info?: Record<string, unknown>;
  /**
   * The epoch of this host's previous runner, which the caller has found dead (same host,
   * so it can tell): its lease is taken over before it expires and its jobs are adopted.
   */
  takeOverEpoch?: number;
}

export interface Registered {
  token: LeaseToken;
  /**
   * Jobs of this host's previous runner, now held by the new epoch: the caller checks each
   * (is its supervisor alive?) and resumes it, or records its end with `loseJob`.
   */
  adopted: FleetJob[];
  /** The epoch that was replaced, if any. */
  previousEpoch: number | null;
}

interface RunnerRow {
  host: string;
  epoch: string;
  state: 'active' | 'stopped' | 'lost';
  pid: number;
  labels: string[];
  agents: string[];
  capacity: number;
  lease_ms: number;
  remaining_ms: number;
  heartbeat_at: Date;
  version: string;
  features: string[];
  load: number;
}

const LEASE_MS_MIN = 200;

function validateRegistration(registration: RunnerRegistration): void {
  validateHostName(registration.host, 'host');
  validateLabels(registration.labels, 'labels');
  if (!Number.isInteger(registration.capacity) || registration.capacity < 0) throw new QueueError('queue_error', 'capacity must be a whole number >= 0');
  validateLeaseMs(registration.leaseMs);
}

function validateLeaseMs(leaseMs: number): void {
  if (!Number.isInteger(leaseMs) || leaseMs < LEASE_MS_MIN) throw new QueueError('queue_error', `leaseMs must be a whole number >= ${LEASE_MS_MIN}`);
}

function leaseLostFrom(error: unknown, token: LeaseToken): unknown {
  if (error && typeof error === 'object' && (error as { code?: unknown }).code === SQLSTATE_LEASE_LOST) {
    return new LeaseLost(token.host, token.epoch, 'its lease expired or was taken over');
  }
  return error;
}

/**
 * Registers this host's runner with a fresh epoch. Refused (`queue_host_taken`) while another
 * live runner holds the host's lease, unless the caller names its epoch in `takeOverEpoch`.
 * When the previous runner's lease was never reaped, its pending and running jobs are
 * adopted (moved to the new epoch in the same transaction) and returned.
 */
export async function registerRunner(db: FleetDb, registration: RunnerRegistration): Promise<Registered> {
  validateRegistration(registration);
  const labels = validateLabels(registration.labels);
  return db.transaction(async (client) => {
    const existing = await client.query<{ epoch: string; state: string; pid: number; live: boolean; expires: Date }>(
      `SELECT epoch, state, pid, lease_expires_at > clock_timestamp() AS live, lease_expires_at AS expires
         FROM ${SCHEMA}.runners WHERE host = $1 FOR UPDATE`,
      [registration.host],
    );
    const previous = existing.rows[0];
    const previousEpoch = previous ? Number(previous.epoch) : null;
    if (previous && previous.state === 'active' && previous.live && previousEpoch !== registration.takeOverEpoch) {
      throw new QueueError('queue_host_taken', `host: a runner already serves host "${registration.host}" (pid ${previous.pid}, epoch ${previousEpoch}, lease until ${previous.expires.toISOString()}); stop it first or give this host another name`);
    }
    const values = [
      registration.host, registration.pid, labels, [...new Set(registration.agents)].sort(), registration.capacity,
      registration.leaseMs, registration.version, { ...registration.info, features: RUNNER_FEATURES },
    ];
    const upserted = await client.query<{ epoch: string }>(
      `INSERT INTO ${SCHEMA}.runners (host, epoch, state, pid, labels, agents, capacity, lease_ms, lease_expires_at, version, info)
       VALUES ($1, nextval('${SCHEMA}.lease_epoch_seq'), 'active', $2, $3, $4, $5, $6::integer, clock_timestamp() + $6::integer * interval '1 millisecond', $7, $8)
       ON CONFLICT (host) DO UPDATE SET epoch = EXCLUDED.epoch, state = 'active', pid = EXCLUDED.pid, labels = EXCLUDED.labels,
         agents = EXCLUDED.agents, capacity = EXCLUDED.capacity, lease_ms = EXCLUDED.lease_ms,
         lease_expires_at = EXCLUDED.lease_expires_at, registered_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
         version = EXCLUDED.version, info = EXCLUDED.info
       RETURNING epoch`,
      values,
    );
    const token: LeaseToken = { host: registration.host, epoch: Number(upserted.rows[0]!.epoch), leaseMs: registration.leaseMs };
    let adopted: FleetJob[] = [];
    if (previous?.state === 'active' && previousEpoch !== null) {
      const moved = await client.query<JobRow>(
        `UPDATE ${SCHEMA}.jobs SET lease_epoch = $2, updated_at = clock_timestamp()
          WHERE lease_epoch = $1 AND status IN ('pending', 'running') RETURNING ${JOB_COLUMNS}`,
        [previousEpoch, token.epoch],
      );
      adopted = moved.rows.map(toFleetJob);
    }
    return { token, adopted, previousEpoch };
  });
}

export interface HeartbeatUpdate {
  agents?: string[];
  labels?: string[];
  capacity?: number;
  /** A new lease length, from this renewal on. */
  leaseMs?: number;
}

/**
 * Renews the lease (expiry = database clock + leaseMs). Throws `LeaseLost` when the epoch is no
 * longer this host's (reaped or replaced): the runner must stop every job of that epoch.
 * A lease that expired but was not reaped yet is renewed: nobody decided anything meanwhile.
 */
export async function heartbeat(sql: Sql, token: LeaseToken, update: HeartbeatUpdate = {}): Promise<{ remainingMs: number }> {
  if (update.leaseMs !== undefined) validateLeaseMs(update.leaseMs);
  const result = await sql.query<{ remaining_ms: number }>(
    `UPDATE ${SCHEMA}.runners
        SET lease_ms = coalesce($6::integer, lease_ms),
            lease_expires_at = clock_timestamp() + coalesce($6::integer, lease_ms) * interval '1 millisecond', heartbeat_at = clock_timestamp(),
            agents = coalesce($3, agents), labels = coalesce($4, labels), capacity = coalesce($5, capacity)
      WHERE host = $1 AND epoch = $2 AND state = 'active'
      RETURNING lease_ms AS remaining_ms`,
    [token.host, token.epoch, update.agents ?? null, update.labels ? validateLabels(update.labels) : null, update.capacity ?? null, update.leaseMs ?? null],
  );
  const row = result.rows[0];
  if (!row) throw new LeaseLost(token.host, token.epoch, 'its lease expired and was taken over, or the runner was stopped');
  return { remainingMs: row.remaining_ms };
}

/** Claims up to `limit` jobs this runner can take (agent, host, labels, free capacity), oldest first. */
export async function claimJobs(sql: Sql, token: LeaseToken, limit = 1): Promise<FleetJob[]> {
  try {
    const result = await sql.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.claim_jobs($1, $2, $3)`, [token.host, token.epoch, limit]);
    return result.rows.sort((a, b) => (a.id < b.id ? -1 : 1)).map(toFleetJob); // oldest first
  } catch (error) {
    throw leaseLostFrom(error, token);
  }
}

/** Gives a claimed job back to the queue before it started (e.g. its supervisor could not be forked). */
export async function releaseClaim(sql: Sql, token: LeaseToken, id: string): Promise<boolean> {
  const result = await sql.query(
    `UPDATE ${SCHEMA}.jobs SET lease_epoch = NULL, runner_host = NULL, updated_at = clock_timestamp()
      WHERE id = $1 AND lease_epoch = $2 AND status = 'pending'`,
    [id, token.epoch],
  );
  return result.rowCount === 1;
}

/** The outcome of a running job whose runner vanished: the end is unknown, never re-run. */
export function lostOutcome(state: JobState, why: string): Outcome {
  return {
    status: 'error',
    exit_code: null,
    signal: null,
    error: { code: 'runner_lost', message: why, hint: 'the job was not re-run; retry it if its work is still wanted' },
    notified: state.notified,
    result: null,
    session_id: state.session_id,
    usage: null,
  };
}

/** Records the end of a job whose worker is gone and whose end nobody saw (an adopted orphan). */
export async function loseJob(sql: Sql, token: LeaseToken, job: FleetJob, why: string): Promise<FleetJob> {
  return transitionJob(sql, job.state.id, { epoch: token.epoch, current: job, change: { name: 'runner_lost', outcome: lostOutcome(job.state, why) } });
}

/**
 * Settles the jobs an epoch held, inside the caller's transaction: a claimed job that never
 * started goes back to the queue (or ends cancelled if that was asked), a running one ends
 * `runner_lost`. Returns the ids of each kind.
 */
async function settleEpochJobs(sql: Sql, epoch: number, why: string): Promise<{ released: string[]; lost: string[] }> {
  const held = await sql.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM ${SCHEMA}.jobs WHERE lease_epoch = $1 AND status IN ('pending', 'running') ORDER BY id FOR UPDATE`,
    [epoch],
  );
  const released: string[] = [];
  const lost: string[] = [];
  for (const job of held.rows.map(toFleetJob)) {
    const id = job.state.id;
    if (job.state.status === 'running') {
      await transitionJob(sql, id, { epoch, current: job, releaseLease: true, change: { name: 'runner_lost', outcome: lostOutcome(job.state, why) } });
      lost.push(id);
    } else if (job.cancelRequest) {
      await transitionJob(sql, id, { epoch, current: job, releaseLease: true, change: { name: 'cancel_pending', attempt: job.claimAttempt } });
      released.push(id);
    } else {
      await sql.query(`UPDATE ${SCHEMA}.jobs SET lease_epoch = NULL, runner_host = NULL, updated_at = clock_timestamp() WHERE id = $1`, [id]);
      released.push(id);
    }
  }
  return { released, lost };
}

/**
 * Stops this runner cleanly: jobs it claimed but did not start go back to the queue, running
 * ones (there should be none: wait for them first) end `runner_lost`, and the lease is given
 * up with a new epoch, so nothing written with the old one is accepted afterwards.
 */
export async function stopRunner(db: FleetDb, token: LeaseToken): Promise<{ released: string[]; lost: string[] }> {
  return db.transaction(async (client) => {
    const row = await client.query(
      `UPDATE ${SCHEMA}.runners SET state = 'stopped', epoch = nextval('${SCHEMA}.lease_epoch_seq'), lease_expires_at = clock_timestamp()
        WHERE host = $1 AND epoch = $2 AND state = 'active'`,
      [token.host, token.epoch],
    );
    if (row.rowCount === 0) throw new LeaseLost(token.host, token.epoch, 'it was already taken over or stopped');
    return settleEpochJobs(client, token.epoch, `the runner of host ${token.host} stopped while the job ran`);
  });
}

export interface ReapReport {
  runners: Array<{ host: string; epoch: number }>;
  released: string[];
  lost: string[];
}

/**
 * Takes over every lease that expired by the database clock: each such runner is marked
 * `lost` under a new epoch and its jobs are settled (see `settleEpochJobs`). A lease is only
 * reaped once the server itself has been up for longer than that lease, so a restart of
 * PostgreSQL gives every runner a full lease to renew before anything is decided. Safe to
 * call from any process at any time; concurrent reapers skip each other's rows.
 */
export async function reapExpired(db: FleetDb, options: { exceptHost?: string } = {}): Promise<ReapReport> {
  return db.transaction(async (client) => {
    // a runner never reaps its own host: its lease is renewed (even once expired) or taken over
    const expired = await client.query<{ host: string; epoch: string; pid: number; expires: Date }>(
      `SELECT host, epoch, pid, lease_expires_at AS expires FROM ${SCHEMA}.runners
        WHERE state = 'active' AND lease_expires_at < clock_timestamp()
          AND clock_timestamp() - pg_postmaster_start_time() > lease_ms * interval '1 millisecond'
          AND host IS DISTINCT FROM $1
        ORDER BY host FOR UPDATE SKIP LOCKED`,
      [options.exceptHost ?? null],
    );
    const report: ReapReport = { runners: [], released: [], lost: [] };
    for (const runner of expired.rows) {
      const epoch = Number(runner.epoch);
      await client.query(
        `UPDATE ${SCHEMA}.runners SET state = 'lost', epoch = nextval('${SCHEMA}.lease_epoch_seq') WHERE host = $1 AND epoch = $2`,
        [runner.host, epoch],
      );
      const why = `the runner of host ${runner.host} (pid ${runner.pid}) stopped renewing its lease (expired ${runner.expires.toISOString()}); the job's end is unknown`;
      const settled = await settleEpochJobs(client, epoch, why);
      report.runners.push({ host: runner.host, epoch });
      report.released.push(...settled.released);
      report.lost.push(...settled.lost);
    }
    return report;
  });
}

/** Every runner the queue knows, with its load and lease (by the database clock). */
export async function listRunners(sql: Sql): Promise<RunnerView[]> {
  const result = await sql.query<RunnerRow>(
    `SELECT r.host, r.epoch, r.state, r.pid, r.labels, r.agents, r.capacity, r.lease_ms, r.heartbeat_at, r.version,
            ${SCHEMA}.runner_features(r.info) AS features,
            (extract(epoch FROM r.lease_expires_at - clock_timestamp()) * 1000)::float8 AS remaining_ms,
            (SELECT count(*)::int FROM ${SCHEMA}.jobs j WHERE j.lease_epoch = r.epoch AND j.status IN ('pending', 'running')) AS load
       FROM ${SCHEMA}.runners r ORDER BY r.host`,
  );
  return result.rows.map((row) => ({
    host: row.host,
    epoch: Number(row.epoch),
    state: row.state,
    live: row.state === 'active' && row.remaining_ms > 0,
    pid: row.pid,
    labels: row.labels,
    agents: row.agents,
    capacity: row.capacity,
    load: row.load,
    leaseMs: row.lease_ms,
    leaseRemainingMs: Math.round(row.remaining_ms),
    heartbeatAt: row.heartbeat_at.toISOString(),
    version: row.version,
    features: row.features,
  }));
}

/** Why each pending, unclaimed job of `jobs` waits (the others are left out). */
export async function pendingReasons(sql: Sql, jobs: readonly FleetJob[]): Promise<Map<string, PendingReason>> {
  const waiting = jobs.filter((job) => job.state.status === 'pending' && job.leaseEpoch === null);
  const reasons = new Map<string, PendingReason>();
  if (waiting.length === 0) return reasons;
  const runners = await listRunners(sql);
  for (const job of waiting) reasons.set(job.state.id, whyPending(job.needs, runners));
  return reasons;
}
