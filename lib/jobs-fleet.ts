import os from 'node:os';
import { stripFooter } from './agents/prompt.js';
import type { Config } from './config.js';
import type { JobsContext } from './context.js';
import {
  FleetQueue, QUEUE_SCHEMA_VERSION, activeJobIds, awaitAnyEnded, deleteFinishedJobs, getJob, listJobs, listRunners, pendingReasons, queueUrlOf,
  readJobFile, readJobs, readOutput, readSchemaVersion, requestCancel, requestDone, requirementsFor, submitJob, validateHostName,
  waitForOutput, type FleetJob, type FleetSnapshot, type PendingReason, type RunnerView,
} from './fleet/index.js';
import { ACTIVITY_TAIL_BYTES, cutPage, type OutputPage } from './read-model.js';
import { JOB_FILES } from './spool/layout.js';
import { isTerminal, type JobState, type JobStatus } from './spool/state.js';
import type { JobSnapshot } from './spool/store.js';

/**
 * The jobs' store in fleet mode: the queue in PostgreSQL (docs/FLEET.md). `lib/jobs.ts` loads
 * this file only when `queue_url` is set, so neither `pg` nor the queue's code is loaded
 * otherwise. Each operation answers in the spool's shapes (JobSnapshot, OutputPage), so the
 * faces cannot tell the two stores apart.
 *
 * The answers the faces build synchronously (the prompt preview, the output tail, the
 * activity line) read a job's "view": its task and the last 32 KiB of its output, fetched
 * from the queue by the operation that returned the job.
 */

interface Session {
  url: string;
  queue: Promise<FleetQueue>;
}

const sessions = new WeakMap<JobsContext, Session>();
/** Every queue opened, with the context it serves (closing one makes that context open it again). */
const opened = new Map<Promise<FleetQueue>, JobsContext>();

/** This host's name in the queue: config `host_name`, else the machine's host name. */
export function hostNameOf(config: Pick<Config, 'host_name'>): string {
  return validateHostName(config.host_name ?? os.hostname(), 'host_name');
}

/** The context's queue, opened (connection and schema checked) on first use and kept. */
export function queueOf(ctx: JobsContext): Promise<FleetQueue> {
  const url = queueUrlOf(ctx.config);
  if (url === null) throw new Error('queueOf: fleet mode is off');
  const current = sessions.get(ctx);
  if (current?.url === url) return current.queue;
  if (current) void closeQueue(current.queue);
  const queue = FleetQueue.open(url, { role: `jobs pid ${process.pid}` });
  opened.set(queue, ctx);
  queue.catch(() => {
    opened.delete(queue);
    if (sessions.get(ctx)?.queue === queue) sessions.delete(ctx); // the next call tries again
  });
  sessions.set(ctx, { url, queue });
  return queue;
}

async function closeQueue(queue: Promise<FleetQueue>): Promise<void> {
  const ctx = opened.get(queue);
  if (ctx && sessions.get(ctx)?.queue === queue) sessions.delete(ctx);
  opened.delete(queue);
  await queue.then((open) => open.close(), () => undefined);
}

/** Closes every queue this process opened (a CLI command's end: the pool would keep it alive). */
export async function closeQueues(): Promise<void> {
  await Promise.all([...opened.keys()].map(closeQueue));
}

// ── views: what synchronous answers read ─────────────────────────────────────────────────

interface JobView {
  task: string | undefined;
  tail: { start: number; bytes: Buffer; size: number };
}

const VIEWS_KEPT = 256;
const views = new WeakMap<JobsContext, Map<string, JobView>>();

function viewsOf(ctx: JobsContext): Map<string, JobView> {
  let found = views.get(ctx);
  if (!found) {
    found = new Map();
    views.set(ctx, found);
  }
  return found;
}

/** Fetches the task and the output tail of each job, for the answers built next. */
async function prefetch(ctx: JobsContext, queue: FleetQueue, states: readonly JobState[]): Promise<void> {
  const kept = viewsOf(ctx);
  await Promise.all(states.map(async (state) => {
    const [prompt, tail] = await Promise.all([
      state.request.argv === null ? readJobFile(queue.db, state.id, JOB_FILES.prompt) : Promise.resolve(null),
      readOutput(queue.db, state.id, -ACTIVITY_TAIL_BYTES, ACTIVITY_TAIL_BYTES),
    ]);
    kept.delete(state.id);
    kept.set(state.id, {
      task: prompt === null ? undefined : stripFooter(prompt.toString('utf8'), state.id),
      tail: { start: tail.offset, bytes: tail.data, size: tail.size },
    });
  }));
  for (const id of kept.keys()) {
    if (kept.size <= VIEWS_KEPT) break;
    kept.delete(id);
  }
}

/** The task of a job an operation just returned; undefined when it has none (or was not fetched). */
export function viewedTask(ctx: JobsContext, id: string): string | undefined {
  return views.get(ctx)?.get(id)?.task;
}

/** The last `bytes` (at most 32 KiB) of a job's output as last fetched, cut as the spool's page is. */
export function viewedTail(ctx: JobsContext, id: string, bytes: number): OutputPage {
  const view = views.get(ctx)?.get(id);
  if (!view) return { job_id: id, offset: 0, next_offset: 0, size: 0, eof: true, data: '' };
  const { start, bytes: data, size } = view.tail;
  const from = Math.max(start, size - Math.floor(bytes));
  return cutPage(id, { start: from, bytes: data.subarray(from - start), size, limit: size - from, tail: true });
}

// ── reading jobs ──────────────────────────────────────────────────────────────────────────

function toSnapshot(snap: FleetSnapshot): JobSnapshot {
  if (snap.kind === 'ok') return { id: snap.id, kind: 'ok', state: snap.job.state };
  return snap;
}

const statesOf = (snaps: readonly JobSnapshot[]): JobState[] => snaps.flatMap((snap) => (snap.kind === 'ok' ? [snap.state] : []));

export async function readSnapshots(ctx: JobsContext, ids: readonly string[]): Promise<JobSnapshot[]> {
  const queue = await queueOf(ctx);
  const snaps = (await readJobs(queue.db, ids)).map(toSnapshot);
  await prefetch(ctx, queue, statesOf(snaps));
  return snaps;
}

export async function readTaskOf(ctx: JobsContext, state: JobState): Promise<string | undefined> {
  const prompt = await readJobFile((await queueOf(ctx)).db, state.id, JOB_FILES.prompt);
  return prompt === null ? undefined : stripFooter(prompt.toString('utf8'), state.id);
}

/** The newest jobs first (by id, which sorts by creation time). */
export async function listSnapshots(ctx: JobsContext, query: { limit: number; status?: JobStatus }): Promise<JobSnapshot[]> {
  const queue = await queueOf(ctx);
  const found = await listJobs(queue.db, query);
  const snaps = found.map((job): JobSnapshot => ({ id: job.state.id, kind: 'ok', state: job.state }));
  await prefetch(ctx, queue, statesOf(snaps));
  return snaps;
}

export async function activeIds(ctx: JobsContext): Promise<string[]> {
  return activeJobIds((await queueOf(ctx)).db);
}

/** The runner that holds (or held) a job, and where it was submitted. */
export async function placementOf(ctx: JobsContext, id: string): Promise<FleetJob | null> {
  return getJob((await queueOf(ctx)).db, id);
}

// ── submit ────────────────────────────────────────────────────────────────────────────────

export interface Placement {
  host?: string;
  labels?: string[];
}

/**
 * Queues a job prepared as for the spool. It runs on the host it names, else on the host it
 * was submitted on: its cwd is a local path there, and an isolated job's snapshot is a ref
 * in the local repository until snapshots are pushed to a shared remote (docs/FLEET.md).
 */
export async function publishToQueue(ctx: JobsContext, state: JobState, files: Record<string, string>, placement: Placement): Promise<void> {
  const queue = await queueOf(ctx);
  const submittedHost = hostNameOf(ctx.config);
  const needs = requirementsFor({ agent: state.request.agent, submittedHost, isolated: false, host: placement.host, labels: placement.labels });
  await submitJob(queue.db, { state, needs, submittedHost, files });
}

// ── waiting ───────────────────────────────────────────────────────────────────────────────

/** The slow safety poll of a wait: notifications wake it; this only covers a lost one. */
const SAFETY_POLL_MS = 5_000;

export interface FleetSettled {
  settled: JobSnapshot[];
  open: JobSnapshot[];
  timedOut: boolean;
  aborted: boolean;
  /** Why each open job that nobody has claimed still waits. */
  reasons: Map<string, PendingReason>;
}

export async function awaitSettled(ctx: JobsContext, ids: readonly string[], options: { timeoutMs: number; signal?: AbortSignal }): Promise<FleetSettled> {
  const queue = await queueOf(ctx);
  const result = await awaitAnyEnded(queue, ids, { timeoutMs: options.timeoutMs, pollMs: SAFETY_POLL_MS, signal: options.signal });
  const openJobs = result.open.flatMap((snap) => (snap.kind === 'ok' ? [snap.job] : []));
  const reasons = await pendingReasons(queue.db, openJobs);
  const settled = result.settled.map(toSnapshot);
  const open = result.open.map(toSnapshot);
  await prefetch(ctx, queue, statesOf([...settled, ...open]));
  return { settled, open, timedOut: result.timedOut, aborted: result.aborted, reasons };
}

/** Notices for the open jobs that wait for a runner, e.g. "job x is pending: no runner has ever registered as host …". */
export function pendingNotices(reasons: Map<string, PendingReason>): string[] {
  return [...reasons].map(([id, reason]) => `job ${id} is pending: ${reason.message}`);
}

// ── cancel, done ──────────────────────────────────────────────────────────────────────────

export type FleetCancel = { state: JobState; result: 'cancelled' | 'already_finished' | 'stopping' };

/** Cancels from any host: at once if nobody claimed it, else its holder stops it (waited for up to `waitSeconds`). */
export async function cancelInQueue(ctx: JobsContext, id: string, waitSeconds: number): Promise<FleetCancel> {
  const queue = await queueOf(ctx);
  const asked = await requestCancel(queue.db, id, `${hostNameOf(ctx.config)} pid ${process.pid}`);
  if (asked.result !== 'requested') return { state: asked.job.state, result: asked.result };
  const waited = await awaitAnyEnded(queue, [id], { timeoutMs: waitSeconds * 1000, pollMs: SAFETY_POLL_MS });
  const [snap] = [...waited.settled, ...waited.open];
  const state = snap?.kind === 'ok' ? snap.job.state : asked.job.state;
  return { state, result: isTerminal(state.status) ? 'cancelled' : 'stopping' };
}

/** Asks the holder of a running job to record it done; false when it is no longer running. */
export async function doneInQueue(ctx: JobsContext, id: string, summary: string): Promise<boolean> {
  return (await requestDone((await queueOf(ctx)).db, id, summary)) !== null;
}

// ── output ────────────────────────────────────────────────────────────────────────────────

/** A page of a job's output from the queue, cut on UTF-8 boundaries as the spool's page is. */
export async function outputFromQueue(ctx: JobsContext, id: string, offset: number, maxBytes: number): Promise<OutputPage> {
  const queue = await queueOf(ctx);
  const limit = Math.max(1, Math.floor(maxBytes));
  const chunk = await readOutput(queue.db, id, offset, limit + 4);
  return cutPage(id, { start: chunk.offset, bytes: chunk.data, size: chunk.size, limit, tail: offset < 0 });
}

/** Resolves when a job has output beyond `offset` or has ended (`logs -f` from any host). */
export async function awaitOutput(ctx: JobsContext, id: string, offset: number, timeoutMs: number): Promise<{ size: number; ended: boolean }> {
  return waitForOutput(await queueOf(ctx), id, offset, { timeoutMs, pollMs: SAFETY_POLL_MS });
}

// ── gc, status ────────────────────────────────────────────────────────────────────────────

/** Removes finished jobs that ended before the cutoff from the queue (their pages and files too). */
export async function gcQueue(ctx: JobsContext, olderThanSeconds: number): Promise<number> {
  return deleteFinishedJobs((await queueOf(ctx)).db, olderThanSeconds * 1000);
}

export interface FleetStatus {
  queue: string;
  schema_version: number;
  host: string;
  hosts: Array<{
    host: string;
    state: RunnerView['state'];
    live: boolean;
    pid: number;
    agents: string[];
    labels: string[];
    load: number;
    capacity: number;
    lease_expires_in_ms: number;
    heartbeat_at: string;
    version: string;
  }>;
  running: JobState[];
  pending: Array<{ state: JobState; runner_host: string | null; reason: PendingReason | null }>;
}

/** Every host of the queue with its load and lease, and why each pending job waits. */
export async function fleetStatus(ctx: JobsContext): Promise<FleetStatus> {
  const queue = await queueOf(ctx);
  const [runners, running, pending] = await Promise.all([
    listRunners(queue.db),
    listJobs(queue.db, { status: 'running', limit: 1000 }),
    listJobs(queue.db, { status: 'pending', limit: 1000 }),
  ]);
  const reasons = await pendingReasons(queue.db, pending);
  return {
    queue: queue.db.shown,
    schema_version: queue.schema.version,
    host: hostNameOf(ctx.config),
    hosts: runners.map((runner) => ({
      host: runner.host,
      state: runner.state,
      live: runner.live,
      pid: runner.pid,
      agents: runner.agents,
      labels: runner.labels,
      load: runner.load,
      capacity: runner.capacity,
      lease_expires_in_ms: runner.leaseRemainingMs,
      heartbeat_at: runner.heartbeatAt,
      version: runner.version,
    })),
    running: running.map((job) => job.state).reverse(),
    pending: pending.reverse().map((job) => ({ state: job.state, runner_host: job.runnerHost, reason: reasons.get(job.state.id) ?? null })),
  };
}

/** What `queue_status` adds in fleet mode: every host with its load and lease, and why each pending job waits. */
export interface FleetOverview {
  queue: string;
  /** This host's name in the queue. */
  host: string;
  hosts: FleetStatus['hosts'];
  pending_reasons: Array<{ job_id: string; code: PendingReason['code']; message: string }>;
}

export function overviewOf(status: FleetStatus): FleetOverview {
  return {
    queue: status.queue,
    host: status.host,
    hosts: status.hosts,
    pending_reasons: status.pending.flatMap(({ state, reason }) => (reason ? [{ job_id: state.id, code: reason.code, message: reason.message }] : [])),
  };
}

/** `queue init`: applies the migrations (under the advisory lock) and says the version. */
export async function initQueue(ctx: JobsContext): Promise<{ queue: string; version: number; applied: number[]; supported: number }> {
  const url = queueUrlOf(ctx.config)!;
  const { FleetDb, migrate } = await import('./fleet/index.js');
  const db = FleetDb.open(url, { role: 'queue init' });
  try {
    const report = await migrate(db, `${hostNameOf(ctx.config)} pid ${process.pid} (queue init)`);
    return { queue: db.shown, version: report.version, applied: report.applied, supported: QUEUE_SCHEMA_VERSION };
  } finally {
    await db.close();
  }
}

/** For `doctor`: the connection, the schema version, without migrating anything. */
export async function probeQueue(ctx: JobsContext): Promise<{ queue: string; version: number; supported: number; latencyMs: number }> {
  const url = queueUrlOf(ctx.config)!;
  const { FleetDb } = await import('./fleet/index.js');
  const db = FleetDb.open(url, { role: 'doctor' });
  try {
    const started = Date.now();
    await db.ping();
    const latencyMs = Date.now() - started;
    return { queue: db.shown, version: await readSchemaVersion(db), supported: QUEUE_SCHEMA_VERSION, latencyMs };
  } finally {
    await db.close();
  }
}
