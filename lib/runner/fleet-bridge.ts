import fs from 'node:fs';
import path from 'node:path';
import { agentNames, getAdapter } from '../agents/registry.js';
import type { Config } from '../config.js';
import {
  CHANNELS, FleetQueue, LeaseKeeper, LeaseLost, Outbox, appendOutput, claimJobs, getJob, isConnectionFailure, loseJob, outputSize,
  queueUrlOf, readJobFile, readJobs, registerRunner, transitionJob, type DeliveryReport, type FleetJob, type LeaseToken,
} from '../fleet/index.js';
import { readJsonFile, removeQuietly, writeJsonAtomic } from '../spool/fsx.js';
import { DIR_MODE, JOB_FILES, jobDir, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, isTerminal, transition, type JobState, type ProcessIdentity } from '../spool/state.js';
import { publishJob, readState, requestCancel, writeDoneFile } from '../spool/store.js';
import { which } from '../which.js';
import { isSettled, mirrorSteps } from './core/fleet-mirror.js';
import type { FleetSettings } from './fleet-settings.js';
import { selfIdentity, terminateJobProcesses, workerGroupIsJobs } from './processes.js';
import { runnerRequest } from './workspace.js';

/**
 * Fleet mode's half in the runner (docs/FLEET.md, "The runner in fleet mode"): the bridge
 * between this host's spool and the queue in PostgreSQL. It registers the host and keeps its
 * lease, claims jobs up to the host's capacity, writes each one's `start` in the queue (fenced
 * by its epoch) and only then publishes it as a pending job folder of the local spool, which
 * the local runner runs exactly as a local job. It mirrors each local change of those jobs to
 * the queue through the write-ahead buffer (`Outbox`), ships output.log in pages, passes the
 * cancel and done requests made on other hosts to the local `cancel` and `done` files, reaps
 * the expired leases of other hosts, and on `LeaseLost` stops every job of that epoch at once
 * and registers again.
 *
 * Its own files live in `<spool>/fleet/`: `host.json` (the host and epoch last registered, so
 * the next runner on this host takes over at once), `held/<id>` (the epoch each job was taken
 * under) and `outbox/` (entries not yet delivered, `outbox/rejected/` those the queue refused).
 */

export interface BridgeOptions {
  paths: SpoolPaths;
  /** The runner's current config (re-read when config.json changes). */
  config: () => Config;
  settings: FleetSettings;
  version: string;
  log: (message: string) => void;
}

interface HeldJob {
  id: string;
  epoch: number;
  /** The queue's copy as this host last recorded it (entries still in the outbox included). */
  queued: JobState;
  /** Bytes of output.log the queue has, as far as this host knows. */
  shipped: number;
  cancelSent: boolean;
  doneSent: boolean;
  watcher: fs.FSWatcher | undefined;
}

const PUMP_EVERY_MS = 250;
const SHIP_MAX_BYTES = 1024 * 1024;
const CONNECT_RETRY_MS = 1_000;
const CONNECT_RETRY_MAX_MS = 10_000;

/** How often the claims and the requests of held jobs are re-read without a wake-up. */
function slowPollMs(leaseMs: number): number {
  return Math.min(5_000, Math.max(500, leaseMs / 2));
}

export class FleetBridge {
  private queue: FleetQueue | undefined;
  private keeper: LeaseKeeper | undefined;
  private token: LeaseToken | undefined;
  private readonly held = new Map<string, HeldJob>();
  /** Jobs claimed whose start is not written in the queue yet. */
  private readonly toStart = new Map<string, FleetJob>();
  private readonly outbox: Outbox;
  private readonly dir: string;
  private readonly heldDir: string;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private pumping = false;
  private pumpAgain = false;
  /** Everything that talks to the queue for held jobs runs here, one step at a time. */
  private lane: Promise<unknown> = Promise.resolve();
  private cutPause: (() => void) | undefined;
  private wantClaim = true;
  private readonly wantRequests = new Set<string>();
  private lastSlowPoll = 0;
  private lastReap = 0;
  private lastTrouble: string | null = null;
  private registering: Promise<void> | undefined;
  private readonly unreachable = new QueueUnreachable();

  constructor(private readonly options: BridgeOptions) {
    this.dir = path.join(options.paths.home, 'fleet');
    this.heldDir = path.join(this.dir, 'held');
    fs.mkdirSync(this.heldDir, { recursive: true, mode: DIR_MODE });
    this.outbox = new Outbox(path.join(this.dir, 'outbox'));
  }

  private get paths(): SpoolPaths {
    return this.options.paths;
  }

  private get host(): string {
    return this.options.settings.hostName;
  }

  private log(message: string): void {
    this.options.log(`fleet: ${message}`);
  }

  /** Logs connection trouble once per distinct message. */
  private trouble(message: string): void {
    if (message !== this.lastTrouble) this.log(message);
    this.lastTrouble = message;
  }

  /** Connects and registers in the background (retrying while the queue cannot be reached). */
  start(): this {
    this.registering = this.connectAndRegister();
    this.timers.push(setInterval(() => this.schedulePump(), PUMP_EVERY_MS));
    return this;
  }

  private async connectAndRegister(): Promise<void> {
    let backoff = CONNECT_RETRY_MS;
    while (!this.stopped) {
      try {
        await this.connect();
        await this.serial(() => this.register());
        this.lastTrouble = null;
        return;
      } catch (error) {
        this.trouble(`cannot register host ${this.host} yet: ${(error as Error).message}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.cutPause = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      backoff = Math.min(CONNECT_RETRY_MAX_MS, backoff * 2);
    }
  }

  private async connect(): Promise<FleetQueue> {
    if (this.queue) return this.queue;
    const url = queueUrlOf(this.options.config());
    const leaseMs = this.options.settings.leaseMs;
    // a statement that hangs longer than a lease is of no use: the lease is gone by then
    const timeoutMs = Math.min(30_000, Math.max(1_000, leaseMs));
    const queue = await FleetQueue.open(url, {
      role: `runner ${this.host}`, queryTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs, log: (m) => this.trouble(m),
      listener: { maxBackoffMs: Math.min(5_000, leaseMs) },
    });
    if (this.stopped) {
      await queue.close();
      throw new Error('stopped');
    }
    this.queue = queue;
    const listener = queue.listener();
    listener.onNotification((channel, payload) => this.onNotification(channel, payload));
    listener.onResync(() => {
      this.wantClaim = true;
      for (const id of this.held.keys()) this.wantRequests.add(id);
      this.schedulePump();
    });
    void listener.armed(timeoutMs);
    return queue;
  }

  private onNotification(channel: string, payload: string): void {
    if (channel === CHANNELS.work) {
      this.wantClaim = true;
      this.schedulePump();
    } else if (channel === CHANNELS.job) {
      const id = payload.split(' ')[0] ?? '';
      if (!this.held.has(id)) return;
      this.wantRequests.add(id);
      this.schedulePump();
    }
  }

  /** The agents this host can run: exec, and each agent whose binary is on PATH. */
  private agents(): string[] {
    const config = this.options.config();
    const searchPath = process.env.PATH ?? '';
    return agentNames(config).filter((name) => {
      if (name === 'exec') return true;
      try {
        return which(getAdapter(name, config).binary, searchPath) !== null;
      } catch {
        return false;
      }
    });
  }

  private capacity(): number {
    return this.options.config().concurrency;
  }

  /** Who answers for the job in the queue: this runner process, under the host's fleet name. */
  private identity(): ProcessIdentity {
    return { ...selfIdentity(), host: this.host };
  }

  private get hostFile(): string {
    return path.join(this.dir, 'host.json');
  }

  private previousEpoch(): number | undefined {
    const read = readJsonFile<{ host?: unknown; epoch?: unknown }>(this.hostFile);
    if (read.kind !== 'ok' || read.value.host !== this.host || typeof read.value.epoch !== 'number') return undefined;
    return read.value.epoch;
  }

  private async register(): Promise<void> {
    const queue = this.queue!;
    // what the previous runner of this spool recorded goes first, under its own epoch
    await this.deliver();
    const registered = await registerRunner(queue.db, {
      host: this.host,
      pid: process.pid,
      agents: this.agents(),
      labels: this.options.settings.labels,
      capacity: this.capacity(),
      leaseMs: this.options.settings.leaseMs,
      version: this.options.version,
      info: { spool: this.paths.home },
      takeOverEpoch: this.previousEpoch(),
    });
    const { token } = registered;
    writeJsonAtomic(this.hostFile, { host: this.host, epoch: token.epoch, pid: process.pid }, 'folder');
    this.token = token;
    this.keeper = new LeaseKeeper(queue.db, token, {
      onLost: (error) => this.onLeaseLost(error),
      onTrouble: (message) => this.trouble(`renewing the lease: ${message}`),
      update: () => ({ agents: this.agents(), capacity: this.capacity() }),
    }).start();
    const taken = registered.previousEpoch !== null && registered.adopted.length > 0 ? `, adopted ${registered.adopted.length} jobs of epoch ${registered.previousEpoch}` : '';
    this.log(`registered host ${this.host} (epoch ${token.epoch}, capacity ${this.capacity()}, agents ${this.agents().join(' ')}${taken})`);
    await this.sortAdopted(registered.adopted);
    this.wantClaim = true;
    this.schedulePump();
  }

  // ── held jobs ─────────────────────────────────────────────────────────────────────────

  private heldMarkers(): string[] {
    try {
      return fs.readdirSync(this.heldDir).filter((name) => /^[0-9a-z]{23}$/.test(name));
    } catch {
      return [];
    }
  }

  private markHeld(id: string, epoch: number): void {
    writeJsonAtomic(path.join(this.heldDir, id), { epoch }, 'folder');
  }

  private hold(job: JobState, epoch: number, shipped: number): void {
    let watcher: fs.FSWatcher | undefined;
    try {
      watcher = fs.watch(jobDir(this.paths, job.id), () => this.schedulePump());
      watcher.on('error', () => undefined);
    } catch {
      // the poll looks anyway
    }
    this.held.set(job.id, { id: job.id, epoch, queued: job, shipped, cancelSent: false, doneSent: false, watcher });
  }

  private release(id: string): void {
    const job = this.held.get(id);
    job?.watcher?.close();
    this.held.delete(id);
    removeQuietly(path.join(this.heldDir, id));
    this.wantClaim = true;
  }

  /**
   * The previous runner's jobs, now this epoch's: claimed but not started in the queue ones are
   * started as if just claimed; running ones are watched again (their supervisors carry on,
   * and the local runner finalizes those whose supervisor died); one that never reached this
   * spool has no supervisor anywhere and is recorded lost. Jobs of the spool's earlier epochs
   * that the queue no longer gives this host were decided elsewhere: they are stopped.
   */
  private async sortAdopted(adopted: FleetJob[]): Promise<void> {
    const db = this.queue!.db;
    const token = this.token!;
    const adoptedIds = new Set(adopted.map((job) => job.state.id));
    for (const id of this.heldMarkers()) {
      if (adoptedIds.has(id) || this.held.has(id)) continue;
      this.stopLocal(id, 'the queue gave this job up (the lease it was taken under expired)');
      removeQuietly(path.join(this.heldDir, id));
    }
    for (const job of adopted) {
      const id = job.state.id;
      if (job.state.status === 'pending') {
        this.toStart.set(id, job);
        continue;
      }
      if (readState(this.paths, id).kind === 'missing') {
        await loseJob(db, token, job, `the runner of host ${this.host} died before the job reached its spool; the job was not started`);
        continue;
      }
      this.markHeld(id, token.epoch);
      this.hold(job.state, token.epoch, await outputSize(db, id));
    }
  }

  /** Stops a local job at once: its `cancel` request, and its worker's processes killed without a grace. */
  private stopLocal(id: string, why: string): void {
    const read = readState(this.paths, id);
    if (read.kind !== 'ok' || isTerminal(read.state.status)) return;
    try {
      requestCancel(this.paths, id, `fleet: ${why}`);
    } catch (error) {
      this.log(`job ${id}: could not write its cancel request: ${(error as Error).message}`);
    }
    const worker = read.state.worker;
    if (worker && workerGroupIsJobs(worker, id)) void terminateJobProcesses({ pid: worker.pid, pgid: worker.pgid }, 0);
    this.log(`job ${id}: stopped (${why})`);
  }

  private onLeaseLost(error: LeaseLost): void {
    this.log(`${error.message}; stopping every job of epoch ${error.epoch} and registering again`);
    // what happened locally since the last pass (an end while the pass waited on the dead
    // connection) goes to the outbox first: it is delivered, refused, and kept in rejected/
    try {
      this.observe();
    } catch (failure) {
      this.log(`the last local changes were not recorded: ${(failure as Error).message}`);
    }
    for (const job of [...this.held.values()]) {
      if (job.epoch !== error.epoch) continue;
      this.stopLocal(job.id, `the lease of host ${this.host} at epoch ${error.epoch} was lost`);
      this.release(job.id);
    }
    this.toStart.clear();
    if (this.token?.epoch === error.epoch) {
      this.token = undefined;
      this.keeper = undefined;
    }
    if (!this.stopped) this.registering = this.reRegister();
  }

  private async reRegister(): Promise<void> {
    await this.connectAndRegister();
  }

  // ── the pump: one pass at a time ──────────────────────────────────────────────────────

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lane.then(work, work);
    this.lane = run.catch(() => undefined);
    return run;
  }

  private schedulePump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.serial(() => this.pump()).finally(() => {
      this.pumping = false;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        this.schedulePump();
      }
    });
  }

  private async pump(): Promise<void> {
    this.observe();
    if (!this.queue) return;
    const now = Date.now();
    if (now - this.lastSlowPoll > slowPollMs(this.options.settings.leaseMs)) {
      this.lastSlowPoll = now;
      this.wantClaim = true;
      for (const id of this.held.keys()) this.wantRequests.add(id);
    }
    try {
      await this.shipOutput();
      await this.deliver();
      await this.passRequests();
      await this.startClaimed();
      if (this.wantClaim) await this.claim();
      await this.reap();
      this.lastTrouble = null;
    } catch (error) {
      if (error instanceof LeaseLost) void this.keeper?.renew(); // the keeper confirms it and stops the epoch
      else if (error === this.unreachable || isConnectionFailure(error)) this.trouble(`queue unreachable: ${(error as Error).message}; the outbox keeps what happens`);
      else this.log(`pass failed: ${(error as Error).stack ?? String(error)}`);
    }
  }

  /** Records in the outbox what changed locally in each held job (no database needed). */
  private observe(): void {
    for (const job of this.held.values()) {
      const read = readState(this.paths, job.id);
      if (read.kind !== 'ok') continue;
      for (const step of mirrorSteps(job.queued, read.state)) {
        try {
          job.queued = transition(job.queued, step.change, new Date(step.at));
        } catch (error) {
          if (!(error instanceof IllegalTransition)) throw error;
          this.log(`job ${job.id}: ${error.message}; not mirrored`);
          break;
        }
        this.outbox.record({ job_id: job.id, host: this.host, epoch: job.epoch, at: step.at, change: step.change, output_bytes: this.outputBytes(job.id) });
      }
    }
  }

  private outputBytes(id: string): number {
    return fs.statSync(jobFile(this.paths, id, JOB_FILES.output), { throwIfNoEntry: false })?.size ?? 0;
  }

  private readOutputSlice(id: string, offset: number, length: number): Buffer {
    let fd: number;
    try {
      fd = fs.openSync(jobFile(this.paths, id, JOB_FILES.output), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    } catch {
      return Buffer.alloc(0);
    }
    try {
      if (!fs.fstatSync(fd).isFile()) return Buffer.alloc(0);
      const buffer = Buffer.alloc(length);
      const read = fs.readSync(fd, buffer, 0, length, offset);
      return buffer.subarray(0, read);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** New output of the running held jobs, in pages; an ended job's rest goes with its end (outbox). */
  private async shipOutput(): Promise<void> {
    const db = this.queue!.db;
    for (const job of this.held.values()) {
      if (job.queued.status !== 'running' || this.token?.epoch !== job.epoch) continue;
      const size = this.outputBytes(job.id);
      if (size <= job.shipped) continue;
      const chunk = this.readOutputSlice(job.id, job.shipped, Math.min(SHIP_MAX_BYTES, size - job.shipped));
      if (chunk.length === 0) continue;
      try {
        job.shipped = await appendOutput(db, job.id, job.epoch, job.shipped, chunk);
      } catch (error) {
        if (error instanceof LeaseLost || isConnectionFailure(error)) throw error;
        // the queue holds other bytes than this host thought (a gap): start again from its end
        this.log(`job ${job.id}: output not shipped (${(error as Error).message}); resuming from what the queue has`);
        job.shipped = await outputSize(db, job.id);
      }
    }
  }

  private async deliver(): Promise<void> {
    if (this.outbox.pending().length === 0) return;
    const report = await this.outbox.deliver(this.queue!.db, (id, offset, length) => this.readOutputSlice(id, offset, length));
    this.noteDelivery(report);
    if (report.error) throw this.unreachable.because(report.error);
    for (const job of [...this.held.values()]) {
      const local = readState(this.paths, job.id);
      if (local.kind === 'ok' && isSettled(local.state) && isTerminal(job.queued.status) && !this.awaitsDelivery(job.id)) this.release(job.id);
    }
  }

  private awaitsDelivery(id: string): boolean {
    return this.outbox.pending().some((file) => file.endsWith(`-${id}.json`));
  }

  private noteDelivery(report: DeliveryReport): void {
    for (const { file, reason } of report.rejected) this.log(`outbox: ${path.basename(file)} refused by the queue (${reason}); kept in outbox/rejected/`);
  }

  /** Cancel and done requests made on any host, passed to the local files the local runner obeys. */
  private async passRequests(): Promise<void> {
    if (this.wantRequests.size === 0) return;
    const ids = [...this.wantRequests].filter((id) => this.held.has(id));
    this.wantRequests.clear();
    if (ids.length === 0) return;
    for (const snapshot of await readJobs(this.queue!.db, ids)) {
      const job = this.held.get(snapshot.id);
      if (!job || snapshot.kind !== 'ok' || snapshot.job.leaseEpoch !== job.epoch) continue;
      const { cancelRequest, doneRequest } = snapshot.job;
      try {
        if (cancelRequest && !job.cancelSent) {
          job.cancelSent = true;
          requestCancel(this.paths, job.id, `fleet: ${cancelRequest.by ?? 'another host'}`);
          this.log(`job ${job.id}: cancel requested${cancelRequest.by ? ` by ${cancelRequest.by}` : ''}`);
        }
        if (doneRequest && !job.doneSent) {
          job.doneSent = true;
          writeDoneFile(this.paths, job.id, doneRequest.summary);
          this.log(`job ${job.id}: done reported through the queue`);
        }
      } catch (error) {
        this.log(`job ${job.id}: could not pass a request to the spool: ${(error as Error).message}`);
      }
    }
  }

  private async claim(): Promise<void> {
    const token = this.token;
    if (!token || this.keeper?.lost || this.stopped) return;
    this.wantClaim = false;
    const claimed = await claimJobs(this.queue!.db, token, this.capacity());
    for (const job of claimed) this.toStart.set(job.state.id, job);
    if (claimed.length > 0) await this.startClaimed();
  }

  private async startClaimed(): Promise<void> {
    for (const job of [...this.toStart.values()]) {
      const token = this.token;
      if (!token || this.stopped) return;
      try {
        await this.take(job, token);
      } catch (error) {
        if (error instanceof LeaseLost || isConnectionFailure(error)) throw error;
        await this.refuseToStart(job, token, (error as Error).message);
      }
    }
  }

  /** A claimed job this host cannot start (an unreadable job file, …) ends there, not claimed again and again. */
  private async refuseToStart(job: FleetJob, token: LeaseToken, why: string): Promise<void> {
    const id = job.state.id;
    this.toStart.delete(id);
    this.log(`job ${id}: cannot be started here: ${why}`);
    await transitionJob(this.queue!.db, id, {
      epoch: token.epoch, current: job, change: { name: 'fail_to_start', attempt: job.claimAttempt, error: { code: 'internal_error', message: `host ${this.host} could not start it: ${why}` } },
    }).catch((error: unknown) => this.log(`job ${id}: its failure was not recorded: ${(error as Error).message}`));
  }

  /**
   * Starts a claimed job: its `start` in the queue first (fenced: from then on the job can only
   * end, never be claimed again by anyone), then the local job folder the local runner runs.
   * A host that dies between the two leaves a running job the queue records as lost.
   */
  private async take(job: FleetJob, token: LeaseToken): Promise<void> {
    const db = this.queue!.db;
    const id = job.state.id;
    const prompt = await readJobFile(db, id, JOB_FILES.prompt);
    let started: FleetJob;
    try {
      started = await transitionJob(db, id, {
        epoch: token.epoch, current: job, change: { name: 'start', attempt: job.claimAttempt, epoch: token.epoch, supervisor: this.identity() },
      });
    } catch (error) {
      if (!(error instanceof IllegalTransition)) throw error;
      // an earlier start whose answer was lost, or a job that moved on meanwhile
      const now = await getJob(db, id);
      this.toStart.delete(id);
      if (!now || now.leaseEpoch !== token.epoch || now.state.status !== 'running') return;
      started = now;
    }
    this.toStart.delete(id);
    this.markHeld(id, token.epoch);
    this.hold(started.state, token.epoch, 0);
    try {
      this.materialise(job, prompt);
    } catch (error) {
      this.log(`job ${id}: could not be placed in the spool: ${(error as Error).message}`);
      this.recordFailure(started.state, token.epoch, `this host could not place the job in its spool: ${(error as Error).message}`);
    }
  }

  /** The claimed job as a pending job folder of the local spool; nothing if it is there already. */
  private materialise(job: FleetJob, prompt: Buffer | null): void {
    const id = job.state.id;
    if (fs.existsSync(jobDir(this.paths, id))) return;
    removeQuietly(path.join(this.paths.tmp, `${id}.job`)); // a publish a crash cut short
    // an isolated job from another host runs from this host's clone of the remote it was pushed to
    const request = job.submittedHost === this.host ? job.state.request : runnerRequest(this.paths, job.state.request);
    const local = {
      ...job.state,
      // the local claim then takes the queue's attempt number
      attempt: Math.max(0, job.claimAttempt - 1),
      // the worker binary is looked up on this host's PATH, not the submitter's
      request: { ...request, env_path: process.env.PATH ?? null },
    };
    publishJob(this.paths, local, prompt ? { [JOB_FILES.prompt]: prompt.toString('utf8') } : {});
  }

  private recordFailure(queued: JobState, epoch: number, message: string): void {
    const held = this.held.get(queued.id);
    const change = {
      name: 'finish' as const,
      outcome: {
        status: 'error' as const, error: { code: 'internal_error' as const, message }, exit_code: null, signal: null, notified: null, result: null, session_id: null, usage: null,
      },
    };
    const at = new Date().toISOString();
    if (held) held.queued = transition(held.queued, change, new Date(at));
    this.outbox.record({ job_id: queued.id, host: this.host, epoch, at, change, output_bytes: 0 });
  }

  private async reap(): Promise<void> {
    const keeper = this.keeper;
    if (!keeper || Date.now() - this.lastReap < this.options.settings.leaseMs / 2) return;
    this.lastReap = Date.now();
    const report = await keeper.reap();
    if (report && report.runners.length > 0) {
      this.log(`reaped the expired leases of ${report.runners.map((r) => r.host).join(', ')}: ${report.lost.length} jobs lost, ${report.released.length} back in the queue`);
    }
  }

  /**
   * Stops the bridge. With no job held, the lease is given up (`stopRunner`); with jobs still
   * running here it is left to expire, so the next runner on this host adopts them in time.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const job of this.held.values()) job.watcher?.close();
    this.cutPause?.();
    await this.registering;
    await this.serial(async () => {
      try {
        if (!this.queue) return;
        this.observe();
        await this.deliver().catch(() => undefined);
        if (this.held.size === 0 && this.toStart.size === 0) await this.keeper?.stop();
        else this.keeper?.abandon();
      } catch (error) {
        this.log(`giving up the lease: ${(error as Error).message}`);
        this.keeper?.abandon();
      } finally {
        await this.queue?.close();
      }
    });
  }
}

/** The outbox stopped at a connection failure: the rest of the pass waits for the next one. */
class QueueUnreachable extends Error {
  because(reason: string): this {
    this.message = reason;
    return this;
  }
}
