import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { SpoolPaths } from '../spool/layout.js';
import { awaitsWorkerExit, isTerminal, type JobState } from '../spool/state.js';
import { cancelRequested, listActive, readState, removeFromActive } from '../spool/store.js';
import { ActiveList } from '../spool/active-list.js';
import { gcJobs } from '../spool/gc.js';
import { sweepTmp } from '../spool/sweep.js';
import { acquireLeadership, type Leadership } from './lease.js';
import { clearStartingMarker, openRunnerLog } from './launch.js';
import { selfIdentity } from './processes.js';
import { cancelPendingJob, finalizeOrphan, isExitOrphaned, isRunnerLost, pendingClaimStatus } from './reconcile.js';
import { SPOOL_UNWRITABLE, SUPERVISOR_DID_NOT_START, type SupervisorReply } from './messages.js';
import { SupervisorPool } from './supervisor-pool.js';
import { traceStep } from './trace.js';
import { exclusionKey, planTick, type ActiveJob, type OwnJob } from './core/schedule.js';
import { collectWorktrees } from './workspace.js';
import { queueUrlOf } from '../fleet/url.js';
import { fleetSettings } from './fleet-settings.js';
import type { FleetBridge } from './fleet-bridge.js';

/**
 * The elected runner: claims pending jobs in FIFO order up to the concurrency limit (never
 * two without isolation in one work tree, see exclusionKey), hands each to a supervisor process, adopts the running jobs of a runner
 * that died and finalizes those whose supervisor is gone, sweeps temp files, and exits
 * after an idle time. Its work list is `active/`; it never scans `jobs/`.
 */

export interface RunnerOptions {
  paths: SpoolPaths;
  config: Config;
  version: string;
  log: (message: string) => void;
  /** Returns the config again, re-read if config.json was edited; throws while the edit is broken. */
  reloadConfig?: () => Config;
  /** How leadership is won; the lockfile lease unless a caller supplies its own. */
  acquire?: () => Promise<Leadership | null>;
}

/** An active marker with no job folder is a publish in progress, or debris after this. */
const ORPHAN_MARKER_MS = 60_000;
const PUBLISHING_MS = 1_000;
const SWEEP_EVERY_MS = 10 * 60_000;
const RETENTION_EVERY_MS = 60 * 60_000;
/** During a long busy stretch retention waits this long after the start; otherwise it runs when idle. */
const RETENTION_FIRST_MS = 5 * 60_000;
const RETENTION_IDLE_EVERY_MS = 5 * 60_000;
const RETENTION_BATCH = 2_000;
/** While jobs wait, a retention pass stays short: it runs inside a scheduling tick. */
const RETENTION_BUSY_BATCH = 200;
const SUPERVISOR_RETRY_MS = 1000;

export class Runner {
  private leadership: Leadership | null = null;
  private pool: SupervisorPool | undefined;
  /** Jobs handed to our supervisors; `slotFree` once the worker is gone but its end is being recorded. */
  private readonly own = new Map<string, OwnJob>();
  private fullScan = true;
  /** Every slot was taken at the end of the last tick. */
  private saturated = false;
  private readonly active: ActiveList;
  private readonly known = new Map<string, JobState>();
  private readonly reportedCorrupt = new Set<string>();
  /** Active entries whose handling failed, with the error last logged: skipped, so one bad entry never stops the queue. */
  private readonly faulty = new Map<string, string>();
  /** The spool could not be written when a supervisor tried to start a job (a full disk). */
  private spoolUnwritable = false;
  private readonly finalizing = new Set<string>();
  private readonly finalizeFailures = new Map<string, string>();
  private idleSince: number | null = null;
  private tickTimer: NodeJS.Timeout | undefined;
  /** When tickTimer fires (performance.now() ms: the wall clock may step). */
  private tickTimerDue = 0;
  private tickSoon: NodeJS.Immediate | undefined;
  private ticking = false;
  private tickAgain = false;
  private lastSweep = 0;
  private lastRetention = Date.now() - RETENTION_EVERY_MS + RETENTION_FIRST_MS;
  private stopped = false;
  private stopResolve: () => void = () => undefined;
  private readonly cleanups: Array<() => unknown> = [];
  private config: Config;
  private configProblem: string | null = null;
  /** Fleet mode (queue_url set): the bridge to the queue; this runner then never goes idle. */
  private fleet: FleetBridge | undefined;

  constructor(private readonly options: RunnerOptions) {
    this.config = options.config;
    this.active = new ActiveList(options.paths);
  }

  private get paths(): SpoolPaths {
    return this.options.paths;
  }

  private log(message: string): void {
    this.options.log(message);
  }

  private acquire(): Promise<Leadership | null> {
    if (this.options.acquire) return this.options.acquire();
    return acquireLeadership(this.paths, { version: this.options.version, log: (m) => this.log(m) });
  }

  /** Runs until idle, deposed or stopped; resolves false when another runner already leads. */
  async run(): Promise<boolean> {
    this.leadership = await this.acquire();
    clearStartingMarker(this.paths);
    if (!this.leadership) {
      this.log('another runner leads this spool; exiting');
      return false;
    }
    this.log(`leading (epoch ${this.leadership.epoch}, pid ${process.pid}, concurrency ${this.config.concurrency})`);
    this.watchLeadership(this.leadership);
    const logFd = openRunnerLog(this.paths);
    this.cleanups.push(() => fs.closeSync(logFd));
    this.pool = new SupervisorPool(this.paths, logFd, {
      onReply: (jobId, reply) => {
        if (reply.type === 'exited') {
          traceStep('slot-freed', jobId);
          const entry = this.own.get(jobId);
          if (entry) entry.slotFree = true;
          this.schedule();
        } else if (reply.type === 'claim_failed' || reply.type === 'finished') {
          this.own.delete(jobId);
          this.known.delete(jobId);
          const full = reply.type === 'claim_failed' && reply.reason.startsWith(SPOOL_UNWRITABLE);
          this.noteSpoolWritable(jobId, reply);
          // a supervisor that cannot start (a broken install, a process limit), or a spool that
          // cannot be written, is retried once a second, not in a loop
          this.schedule(reply.type === 'claim_failed' && (full || reply.reason.startsWith(SUPERVISOR_DID_NOT_START)) ? SUPERVISOR_RETRY_MS : 0);
        }
      },
      onLost: (jobId) => {
        this.own.delete(jobId);
        this.known.delete(jobId);
        this.schedule();
      },
      log: (m) => this.log(m),
    });
    // A plain directory watch: chokidar would add one inotify watch per marker file.
    try {
      const watcher = fs.watch(this.paths.active, (_event, name) => {
        // while every slot is taken a new job waits anyway: the next end or the poll looks
        if (this.active.noteEvent(name) === 'added' && this.saturated) return;
        this.schedule();
      });
      this.active.setWatched(true);
      watcher.on('error', (error) => {
        this.active.setWatched(false);
        this.log(`watching active/: ${String(error)}; reading the folder on every tick`);
      });
      this.cleanups.push(() => watcher.close());
    } catch (error) {
      this.log(`cannot watch active/: ${String(error)}; reading the folder on every tick`);
    }
    const poll = setInterval(() => {
      this.fullScan = true;
      this.active.invalidate();
      this.schedule();
    }, this.config.poll_seconds * 1000);
    this.cleanups.push(() => clearInterval(poll));
    const stopped = new Promise<void>((resolve) => (this.stopResolve = resolve));
    await this.startFleet();
    this.schedule();
    await stopped;
    return true;
  }

  /** Fleet mode: the queue is loaded only then (pg and lib/fleet stay out of a local runner). */
  private async startFleet(): Promise<void> {
    if (!queueUrlOf(this.config)) return;
    const { FleetBridge } = await import('./fleet-bridge.js');
    // host_name, labels and lease_seconds were validated with the rest of the config
    this.fleet = new FleetBridge({ paths: this.paths, config: () => this.config, settings: fleetSettings(this.config), version: this.options.version, log: (m) => this.log(m) }).start();
    const fleet = this.fleet;
    this.cleanups.unshift(() => fleet.stop());
  }

  /** New values apply to the jobs dispatched from now on; running jobs keep their limits. */
  private reloadConfig(): void {
    if (!this.options.reloadConfig) return;
    try {
      const next = this.options.reloadConfig();
      this.configProblem = null;
      if (next === this.config) return;
      const changed = (Object.keys(next) as Array<keyof Config>).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(this.config[key]));
      this.config = next;
      if (changed.length > 0) this.log(`config.json changed: ${changed.join(', ')}`);
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.configProblem) this.log(`config.json is not valid, keeping the last good config: ${message}`);
      this.configProblem = message;
    }
  }

  private watchLeadership(leadership: Leadership): void {
    leadership.onLost((reason) => {
      if (this.leadership === leadership) this.stop(`lost the lease (${reason})`);
    });
  }

  /** Stops claiming; supervisors keep their jobs and record their ends. */
  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.log(`stopping: ${reason}`);
    clearTimeout(this.tickTimer);
    if (this.tickSoon) clearImmediate(this.tickSoon);
    this.pool?.releaseAll();
    const leadership = this.leadership;
    this.leadership = null;
    void (async () => {
      await leadership?.release();
      for (const cleanup of this.cleanups) await cleanup();
      this.stopResolve();
    })();
  }

  private schedule(delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      // the earliest wins: a look due in 25 ms must not wait behind the idle timer
      const due = performance.now() + delayMs;
      if (this.tickTimer && this.tickTimerDue <= due) return;
      clearTimeout(this.tickTimer);
      this.tickTimerDue = due;
      this.tickTimer = setTimeout(() => {
        this.tickTimer = undefined;
        // through schedule: a tick in progress (going idle awaits) takes it as tickAgain
        this.schedule();
      }, delayMs);
      return;
    }
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    // now: setImmediate, not setTimeout(0), which waits at least a millisecond
    if (this.tickSoon) return;
    this.tickSoon = setImmediate(() => {
      this.tickSoon = undefined;
      void this.tick();
    });
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    try {
      await this.tickOnce();
    } catch (error) {
      this.log(`tick failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      this.ticking = false;
      if (this.tickAgain) {
        this.tickAgain = false;
        this.schedule();
      }
    }
  }

  private async tickOnce(): Promise<void> {
    const leadership = this.leadership;
    if (!leadership) return;
    if (!leadership.isLeading()) return this.stop('another runner took over the lease');
    if (Date.now() - this.lastSweep > SWEEP_EVERY_MS) {
      this.lastSweep = Date.now();
      const swept = sweepTmp(this.paths, this.config.tmp_max_age_seconds * 1000, listActive(this.paths));
      if (swept > 0) this.log(`swept ${swept} stale temp files`);
    }
    if (Date.now() - this.lastRetention > RETENTION_EVERY_MS) this.applyRetention(RETENTION_BUSY_BATCH);

    // one stat: an edit made just before a submit applies to that job
    this.reloadConfig();
    const config = this.config;
    const activeIds = this.active.list();
    const activeSet = new Set(activeIds);
    for (const id of this.known.keys()) if (!activeSet.has(id)) this.known.delete(id);
    for (const id of this.faulty.keys()) if (!activeSet.has(id)) this.faulty.delete(id);

    // every pending job's cancel request is looked at on the slow poll; between polls only
    // the jobs about to be dispatched are (a cancel of a pending job is normally done by the
    // canceller itself, see jobs.cancel)
    const fullScan = this.fullScan;
    this.fullScan = false;
    const seen = new Map<string, JobState>();
    const active: ActiveJob[] = [];
    for (const id of activeIds) {
      if (this.own.has(id)) continue;
      const state = this.contained(id, () => this.stateOf(id));
      if (!state) continue;
      seen.set(id, state);
      const key = exclusionKey(state.request, config);
      if (state.status === 'pending') active.push({ id, holdsSlot: false, key });
      // a job ended by its done report holds its slot until its worker is gone
      else if (state.status === 'running' || awaitsWorkerExit(state)) active.push({ id, holdsSlot: true, key, orphaned: isRunnerLost(state) || isExitOrphaned(state) });
    }
    const plan = planTick({ concurrency: config.concurrency, fullScan, own: [...this.own.values()], active }, {
      cancelRequested: (id) => cancelRequested(this.paths, id),
      claim: (id) => this.contained(id, () => pendingClaimStatus(this.paths, seen.get(id)!)),
    });
    for (const id of plan.finalize) void this.finalize(seen.get(id)!);
    for (const id of plan.cancel) this.cancelPending(seen.get(id)!);
    for (const { id, attempt, key } of plan.dispatch) {
      this.own.set(id, { key, slotFree: false });
      traceStep('dispatched', id);
      this.pool!.dispatch({ type: 'run', jobId: id, attempt, epoch: leadership.epoch, config });
    }
    this.saturated = plan.saturated;
    // one spare: the next job can start while the last one's end is still being recorded
    this.pool!.trim(config.concurrency + 1);
    if (this.own.size > 0) this.pool!.warm(Math.min(config.warm_supervisors ?? config.concurrency, config.concurrency + 1));
    await this.checkIdle(this.workable(activeIds).length === 0 && this.own.size === 0);
  }

  /** Removes finished jobs past the configured age or count (never pending or running ones). */
  private applyRetention(batch: number): void {
    this.lastRetention = Date.now();
    const { retention_days: days, retention_max_jobs: max } = this.config;
    if (days === null && max === null) return;
    try {
      const report = gcJobs(this.paths, {
        olderThanSeconds: days === null ? undefined : days * 86_400,
        keep: max ?? undefined,
        limit: batch,
      });
      if (report.removed.length > 0) this.log(`retention: removed ${report.removed.length} finished jobs`);
      if (report.removed.length > 0) void this.collectWorktrees();
    } catch (error) {
      this.log(`retention failed: ${(error as Error).message}`);
    }
  }

  /** The refs and worktrees of isolated jobs that retention removed (their branches with unapplied work stay). */
  private async collectWorktrees(): Promise<void> {
    try {
      const report = await collectWorktrees(this.paths, { branches: false });
      if (report.removed.length > 0) this.log(`retention: removed the refs of ${report.removed.length} isolated jobs`);
    } catch (error) {
      this.log(`retention of worktrees failed: ${(error as Error).message}`);
    }
  }

  /** Logs once when the spool turns out full on a job's start, and once when a job ends again. */
  private noteSpoolWritable(jobId: string, reply: SupervisorReply): void {
    if (reply.type === 'claim_failed' && reply.reason.startsWith(SPOOL_UNWRITABLE)) {
      if (!this.spoolUnwritable) this.log(`job ${jobId}: not started: ${reply.reason} Trying again every second.`);
      this.spoolUnwritable = true;
    } else if (reply.type === 'finished' && this.spoolUnwritable) {
      this.log('the spool can be written again');
      this.spoolUnwritable = false;
    }
  }

  /**
   * Runs one step about one active entry: an error is that entry's alone. It is logged once
   * (again only when it changes), the entry is skipped, and the queue goes on.
   */
  private contained<T>(id: string, step: () => T): T | undefined {
    try {
      const result = step();
      this.faulty.delete(id);
      return result;
    } catch (error) {
      const message = (error as Error).message;
      if (this.faulty.get(id) !== message) this.log(`job ${id}: ${message}; skipping it (said once)`);
      this.faulty.set(id, message);
      return undefined;
    }
  }

  /** Active jobs apart from those that cannot be handled (an unreadable state.json, a bad entry): those must not keep the runner up. */
  private workable(activeIds: readonly string[]): readonly string[] {
    if (this.reportedCorrupt.size === 0 && this.faulty.size === 0) return activeIds;
    return activeIds.filter((id) => !this.reportedCorrupt.has(id) && !this.faulty.has(id));
  }

  /** The state of an active job, from the cache while it is pending (only a claim changes it). */
  private stateOf(id: string): JobState | undefined {
    const cached = this.known.get(id);
    if (cached?.status === 'pending') return cached;
    const read = readState(this.paths, id);
    if (read.kind === 'ok') {
      this.reportedCorrupt.delete(id);
      if (isTerminal(read.state.status) && !awaitsWorkerExit(read.state)) {
        removeFromActive(this.paths, id);
        return undefined;
      }
      this.known.set(id, read.state);
      return read.state;
    }
    if (read.kind === 'corrupt') {
      if (!this.reportedCorrupt.has(id)) {
        this.reportedCorrupt.add(id);
        this.log(`job ${id}: state.json is unreadable (${read.reason}); skipping it`);
      }
      return undefined;
    }
    this.handleMissingJob(id);
    return undefined;
  }

  private handleMissingJob(id: string): void {
    let age: number;
    try {
      age = Date.now() - fs.statSync(path.join(this.paths.active, id)).mtimeMs;
    } catch {
      return;
    }
    if (age > ORPHAN_MARKER_MS) removeFromActive(this.paths, id);
    // a publish takes milliseconds: look again soon while the marker is that young, else at the poll
    else if (age < PUBLISHING_MS) this.schedule(25);
  }

  private cancelPending(state: JobState): void {
    const owner = { role: 'runner' as const, ...selfIdentity(), epoch: this.leadership?.epoch ?? null, at: new Date().toISOString() };
    try {
      if (cancelPendingJob(this.paths, state, owner)) this.log(`job ${state.id}: cancelled before it started`);
    } catch (error) {
      this.log(`job ${state.id}: could not cancel: ${(error as Error).message}`);
    }
    this.known.delete(state.id);
  }

  private async finalize(stale: JobState): Promise<void> {
    if (this.finalizing.has(stale.id)) return;
    this.finalizing.add(stale.id);
    let failed = false;
    try {
      const fresh = readState(this.paths, stale.id);
      if (fresh.kind !== 'ok') return;
      const state = await finalizeOrphan(this.paths, fresh.state, this.config, (m) => this.log(m));
      if (state) this.log(`job ${state.id}: finalized as ${state.status}${state.error ? ` (${state.error.code})` : ''} after its supervisor died`);
      this.finalizeFailures.delete(stale.id);
    } catch (error) {
      // retried on the slow poll, not at once: a lasting failure (disk full) must not spin
      failed = true;
      const message = (error as Error).message;
      if (this.finalizeFailures.get(stale.id) !== message) this.log(`job ${stale.id}: could not finalize: ${message}`);
      this.finalizeFailures.set(stale.id, message);
    } finally {
      this.finalizing.delete(stale.id);
      this.known.delete(stale.id);
      if (!failed) this.schedule();
    }
  }

  private async checkIdle(idle: boolean): Promise<void> {
    if (!idle || this.finalizing.size > 0 || this.fleet) {
      this.idleSince = null;
      return;
    }
    this.idleSince ??= Date.now();
    // the queue is empty: a good moment for retention, which then delays no job
    if (Date.now() - this.lastRetention > RETENTION_IDLE_EVERY_MS) this.applyRetention(RETENTION_BATCH);
    if (Date.now() - this.idleSince < this.config.runner_idle_seconds * 1000) {
      this.schedule(this.config.runner_idle_seconds * 1000);
      return;
    }
    // Release first, then look once more: a submit that came before the release is seen
    // here; one that comes after finds no leader and starts a new runner itself.
    const leadership = this.leadership;
    this.leadership = null;
    await leadership?.release();
    if (this.workable(listActive(this.paths)).length === 0) {
      this.stop(`idle for ${this.config.runner_idle_seconds} s`);
      return;
    }
    this.leadership = await this.acquire();
    if (!this.leadership) {
      this.stop('work arrived while going idle, and another runner leads');
      return;
    }
    this.watchLeadership(this.leadership);
    this.idleSince = null;
    this.schedule();
  }
}
