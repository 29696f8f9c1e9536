import fs from 'node:fs';
import os from 'node:os';
import { stripFooter } from './agents/prompt.js';
import type { Config } from './config.js';
import type { JobsContext } from './context.js';
import {
  FleetQueue, QUEUE_SCHEMA_VERSION, activeJobIds, awaitAnyEnded, deleteFinishedJobs, finishedJobsWithRemote, getJob, listJobs, listRunners, pendingReasons, queueUrlOf,
  readJobFile, readJobs, readOutput, readSchemaVersion, requestCancel, requestDone, requirementsFor, submitJob, transitionJob, validateHostName,
  waitForOutput, type FleetJob, type FleetSnapshot, type PendingReason, type RunnerView,
} from './fleet/index.js';
import { ACTIVITY_TAIL_BYTES, cutPage, type OutputPage } from './read-model.js';
import { JOB_FILES } from './spool/layout.js';
import { UserError, quoteInput } from './errors.js';
import { isTerminal, type JobRequest, type JobState, type JobStatus } from './spool/state.js';
import { spoolJobs, type EndedJobs } from './isolation.js';
import { readState } from './spool/store.js';
import { cacheRemoteOf, cacheRepository, deleteRemoteRefs, findRemoteUrl, pushBase, worktreeContext } from './worktree/index.js';
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

/** Closes a queue; resolves to how many of its connections were cut (the server did not hang up in time). */
async function closeQueue(queue: Promise<FleetQueue>): Promise<number> {
  const ctx = opened.get(queue);
  if (ctx && sessions.get(ctx)?.queue === queue) sessions.delete(ctx);
  opened.delete(queue);
  return queue.then((open) => open.close(), () => 0);
}

/**
 * Closes every queue this process opened (a CLI command's end: the pool would keep it alive);
 * resolves to how many connections were cut because the server did not hang up in time.
 */
export async function closeQueues(): Promise<number> {
  const cut = await Promise.all([...opened.keys()].map(closeQueue));
  return cut.reduce((sum, n) => sum + n, 0);
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
 * An isolated job's snapshot goes to the repository's `fleet_remote` (`refs/agent-async/<id>/base`),
 * so that any host with its agent can run it; answered with the remote's URL in the request.
 * Without that remote (or with `fleet_remote` ""; or `apply: true`, which writes into the
 * submitter's cwd when the job ends) it stays on this host: a job pinned to another host is
 * then refused. Nothing is pushed for a job pinned to this host, nor for one that continues
 * another (it works on that job's branch, not a new snapshot).
 */
export async function shareSnapshot(ctx: JobsContext, id: string, request: JobRequest, placement: Placement): Promise<JobRequest> {
  const snapshot = request.worktree;
  const here = hostNameOf(ctx.config);
  // pinned here: no other host will ever need the snapshot
  if (request.isolation !== 'worktree' || snapshot?.id !== id || placement.host === here) return request;
  const elsewhere = placement.host !== undefined;
  const remote = ctx.config.fleet_remote;
  const wtx = worktreeContext(ctx.paths);
  const url = remote === '' || request.apply ? null : await findRemoteUrl(wtx, snapshot.repo_root, remote);
  if (url === null) {
    if (elsewhere) throw cannotLeave(request, placement.host!, remote, here);
    return request;
  }
  if (URL_WITH_PASSWORD.test(url)) {
    throw new UserError('bad_input', `fleet_remote: the URL of remote ${quoteInput(remote)} holds a password, which would be stored in the job's state on every host; give the remote a URL without it (a credential helper or an ssh key keeps the secret), or set fleet_remote to another remote`, 'fleet_remote');
  }
  try {
    await pushBase(wtx, snapshot.repo_root, remote, id);
  } catch (error) {
    const why = (error as Error).message.trim();
    throw new UserError('bad_input', `fleet_remote: the job's snapshot could not be pushed to remote ${quoteInput(remote)} (${url}), so no other host could run it, and nothing was queued (${why}); make the remote writable from this host, or set fleet_remote to "" to run isolated jobs on the host that submits them`, 'fleet_remote');
  }
  return { ...request, worktree: { ...snapshot, remote_url: url } };
}

const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i;

function cannotLeave(request: JobRequest, host: string, remote: string, here: string): UserError {
  const why = request.apply
    ? 'a job with apply: true writes its changes into cwd here when it ends, so it runs on this host'
    : remote === ''
      ? 'config fleet_remote is "", so its snapshot is not pushed anywhere another host could fetch it'
      : `the repository at ${request.worktree!.repo_root} has no remote ${quoteInput(remote)} (config fleet_remote) that host ${quoteInput(host)} could fetch its snapshot from`;
  const fix = request.apply ? 'leave out apply and apply it with job_apply' : 'add a remote both hosts can reach (git remote add <name> <url>; fleet_remote names it)';
  return new UserError('bad_input', `host: an isolated job runs on another host only through a git remote: ${why}; ${fix}, or run it here (host ${quoteInput(here)} or no host)`, 'host');
}

/**
 * Queues a job prepared as for the spool. It runs on the host it names, else on any host when
 * it is an isolated job whose snapshot was pushed to a shared remote, else on the host it was
 * submitted on (its cwd is a local path there).
 */
export async function publishToQueue(ctx: JobsContext, state: JobState, files: Record<string, string>, placement: Placement): Promise<void> {
  const queue = await queueOf(ctx);
  const submittedHost = hostNameOf(ctx.config);
  const fromRemote = state.request.worktree?.remote_url !== undefined;
  const isolated = fromRemote && state.request.worktree!.id === state.id;
  const needs = requirementsFor({ agent: state.request.agent, submittedHost, isolated, fromRemote, host: placement.host, labels: placement.labels });
  await submitJob(queue.db, { state, needs, submittedHost, files });
}

/** A snapshot pushed for a job that was not queued after all goes from the remote too. */
export async function unshareSnapshot(ctx: JobsContext, id: string, request: JobRequest): Promise<void> {
  const snapshot = request.worktree;
  if (snapshot?.id !== id || snapshot.remote_url === undefined) return;
  await deleteRemoteRefs(worktreeContext(ctx.paths), snapshot.repo_root, snapshot.remote_url, id).catch(() => undefined);
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

export interface QueueGc {
  removed: number;
  /** Jobs kept in the queue because their refs on a remote could not be removed (gc tries again). */
  kept: { id: string; reason: string }[];
}

/**
 * Removes finished jobs from the queue that ended before the cutoff (their pages and files too),
 * and first their refs on the remote their snapshot was pushed to; a job whose refs there
 * cannot be removed stays, so that its URL is not forgotten.
 */
export async function gcQueue(ctx: JobsContext, olderThanSeconds: number): Promise<QueueGc> {
  const { db } = await queueOf(ctx);
  const kept: QueueGc['kept'] = [];
  for (const job of await finishedJobsWithRemote(db, olderThanSeconds * 1000)) {
    try {
      await deleteRemoteRefsOf(ctx, job);
    } catch (error) {
      kept.push({ id: job.state.id, reason: (error as Error).message.trim() });
    }
  }
  return { removed: await deleteFinishedJobs(db, olderThanSeconds * 1000, kept.map((job) => job.id)), kept };
}

/** A job's refs on the remote, removed through its repository when it was submitted here, else this host's cache of the remote. */
async function deleteRemoteRefsOf(ctx: JobsContext, job: FleetJob): Promise<void> {
  const snapshot = job.state.request.worktree;
  if (snapshot?.remote_url === undefined || snapshot.id !== job.state.id) return;
  const wtx = worktreeContext(ctx.paths);
  const local = job.submittedHost === hostNameOf(ctx.config) && fs.existsSync(snapshot.repo_root);
  const cwd = local ? snapshot.repo_root : await cacheRepository(wtx, snapshot.remote_url);
  await deleteRemoteRefs(wtx, cwd, snapshot.remote_url, job.state.id);
}

// ── an isolated job's work: where it is read and recorded ────────────────────────────────

/**
 * Ended jobs for job_apply, job_diff and job_discard: a job with a folder in this spool (it ran
 * here) as on the spool; any other from the queue, where what became of its changes is recorded
 * too. Only the host that submitted it has its repository.
 */
export function endedJobs(ctx: JobsContext): EndedJobs {
  const spool = spoolJobs(ctx.paths);
  const here = hostNameOf(ctx.config);
  // a job of another host that ran here has a folder here too, but its work is the submitter's
  const ranHere = (id: string): boolean => {
    const read = readState(ctx.paths, id);
    return read.kind === 'corrupt' || (read.kind === 'ok' && cacheRemoteOf(ctx.paths, read.state.request) === null);
  };
  return {
    read: async (id) => {
      if (ranHere(id)) return spool.read(id);
      const job = await getJob((await queueOf(ctx)).db, id);
      if (!job) throw new UserError('not_found', `job_id ${quoteInput(id)}: no such job in the queue`, 'job_id');
      if (job.submittedHost !== here && job.state.request.worktree) {
        throw new UserError('conflict', `job_id ${id}: it was submitted on host ${job.submittedHost}, whose repository (${job.state.request.worktree.repo_root}) holds its work; apply, diff or discard it there`, 'job_id');
      }
      return job.state;
    },
    record: async (state, changes) => {
      if (ranHere(state.id)) return spool.record(state, changes);
      const { db } = await queueOf(ctx);
      const current = await getJob(db, state.id);
      if (!current) throw new UserError('not_found', `job_id ${quoteInput(state.id)}: no such job in the queue`, 'job_id');
      // an ended job: its changes are the submitter's to record, under whatever epoch still holds it
      const next = await transitionJob(db, state.id, { epoch: current.leaseEpoch, current, change: { name: 'record_changes', changes } });
      return next.state;
    },
  };
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
