import { fork, type ChildProcess } from 'node:child_process';
import type { SpoolPaths } from '../spool/layout.js';
import { SUPERVISOR_ENTRY, runnerEnvironment } from './launch.js';
import { NO_CONFIG, SUPERVISOR_DID_NOT_START, type RunJobMessage, type SupervisorReply } from './messages.js';

/**
 * The runner's supervisor processes. Each is forked detached (its own session, so it
 * outlives the runner) with an IPC channel; an idle one is reused for the next job.
 *
 * Jobs wait in a queue of their own until a supervisor is free, and the first supervisor to
 * be free takes the oldest job: one that is still starting up does not hold a job while
 * another, done a moment later with the end it was recording, takes the next one. So jobs
 * start in the order they were dispatched, and none waits for a Node start-up that an idle
 * supervisor makes needless.
 */

const SPAWN_FAILURE_PAUSE_MS = 10_000;

interface Supervisor {
  process: ChildProcess;
  /** It said 'ready': its handlers are set up. */
  ready: boolean;
  jobId: string | null;
  /** The config object last sent to it. */
  sentConfig: RunJobMessage['config'];
}

function isIdle(supervisor: Supervisor): boolean {
  return supervisor.ready && supervisor.jobId === null && supervisor.process.connected;
}

export interface PoolEvents {
  onReply(jobId: string, reply: SupervisorReply): void;
  /** A supervisor process ended while it had a job (the job is left to reconciliation). */
  onLost(jobId: string): void;
  log(message: string): void;
}

export class SupervisorPool {
  private readonly supervisors = new Set<Supervisor>();
  /** Dispatched jobs no supervisor has taken yet, oldest first. */
  private readonly queue: RunJobMessage[] = [];
  private spawnFailedAt = 0;

  constructor(
    private readonly paths: SpoolPaths,
    private readonly logFd: number,
    private readonly events: PoolEvents,
    /** Tests give a stand-in script that speaks the same messages, or a Node that is not there. */
    private readonly launch: { entry?: string; execPath?: string } = {},
  ) {}

  private spawnSupervisor(): void {
    let child: ChildProcess;
    try {
      child = fork(this.launch.entry ?? SUPERVISOR_ENTRY, [], {
        detached: true,
        stdio: ['ignore', this.logFd, this.logFd, 'ipc'],
        env: runnerEnvironment(process.env, this.paths),
        serialization: 'json',
        execPath: this.launch.execPath ?? process.execPath,
        // a small young generation: a supervisor turns worker output into short-lived strings
        // (2 million lines of `seq` through the text parser: peak +28 MiB with it, +38 without);
        // --expose-gc for LineSplitter, when it lets go of an overlong line
        execArgv: ['--max-semi-space-size=2', '--expose-gc'],
      });
    } catch (error) {
      this.events.log(`could not start a supervisor: ${(error as Error).message}`);
      this.startFailed((error as Error).message);
      return;
    }
    const supervisor: Supervisor = { process: child, ready: false, jobId: null, sentConfig: undefined };
    child.on('message', (reply: SupervisorReply) => {
      if (reply.type === 'ready') {
        supervisor.ready = true;
        return this.handOut();
      }
      if (reply.type === 'claim_failed' && reply.reason === NO_CONFIG) supervisor.sentConfig = undefined;
      if (reply.type === 'claim_failed' || reply.type === 'finished') supervisor.jobId = null;
      this.events.onReply(reply.jobId, reply);
      this.handOut();
    });
    child.on('exit', (code, signal) => {
      this.supervisors.delete(supervisor);
      if (supervisor.jobId !== null) {
        this.events.log(`supervisor pid ${child.pid} ended (${signal ?? code}) while it had job ${supervisor.jobId}`);
        const jobId = supervisor.jobId;
        supervisor.jobId = null;
        this.events.onLost(jobId);
      }
      if (!supervisor.ready) this.startFailed('it exited while starting up');
    });
    child.on('error', (error) => {
      this.events.log(`supervisor pid ${child.pid ?? '(none)'}: ${error.message}`);
      // a process that could not be started at all (ENOENT, EAGAIN, …) never emits 'exit'
      if (child.pid === undefined && this.supervisors.delete(supervisor)) this.startFailed(error.message);
    });
    this.supervisors.add(supervisor);
  }

  private starting(): number {
    let count = 0;
    for (const supervisor of this.supervisors) if (!supervisor.ready && supervisor.process.connected) count += 1;
    return count;
  }

  /** Queues a job for the first free supervisor; one more starts when none is free or starting for it. */
  dispatch(message: RunJobMessage): void {
    this.queue.push(message);
    this.handOut();
    if (this.queue.length > this.starting()) this.spawnSupervisor();
  }

  /** Gives the oldest queued jobs to the idle supervisors. */
  private handOut(): void {
    for (const supervisor of this.supervisors) {
      if (this.queue.length === 0) return;
      if (isIdle(supervisor)) this.send(supervisor, this.queue.shift()!);
    }
  }

  private send(supervisor: Supervisor, message: RunJobMessage): void {
    supervisor.jobId = message.jobId;
    // the config only when it changed: it is most of the message
    const unchanged = message.config === supervisor.sentConfig;
    supervisor.sentConfig = message.config;
    supervisor.process.send(unchanged ? { ...message, config: undefined } : message, undefined, {}, (error) => {
      if (error) supervisor.sentConfig = undefined;
      if (!error || supervisor.jobId !== message.jobId) return;
      supervisor.jobId = null;
      this.events.onReply(message.jobId, { type: 'claim_failed', jobId: message.jobId, reason: `supervisor unreachable: ${error.message}` });
    });
  }

  /** A supervisor could not start: no warming for a while, and its queued jobs go back. */
  private startFailed(why: string): void {
    this.spawnFailedAt = Date.now();
    this.returnUnstaffed(why);
  }

  /**
   * Gives back to the runner the queued jobs that no starting supervisor is left for; it
   * dispatches them again a moment later.
   */
  private returnUnstaffed(why: string): void {
    const reason = `${SUPERVISOR_DID_NOT_START}: ${why}`;
    while (this.queue.length > this.starting()) {
      const message = this.queue.pop()!;
      this.events.onReply(message.jobId, { type: 'claim_failed', jobId: message.jobId, reason });
    }
  }

  /**
   * Starts supervisors until `count` exist (busy, idle or starting), so the next jobs need no
   * Node start-up. Not for a while after a start failed: that would only fail again.
   */
  warm(count: number): void {
    if (Date.now() - this.spawnFailedAt < SPAWN_FAILURE_PAUSE_MS) return;
    let existing = 0;
    for (const supervisor of this.supervisors) if (supervisor.process.connected) existing += 1;
    for (; existing < count; existing += 1) this.spawnSupervisor();
  }

  /** Trims idle supervisors down to `keep`. */
  trim(keep: number): void {
    const idle = [...this.supervisors].filter(isIdle);
    while (idle.length > keep) {
      const extra = idle.pop()!;
      this.supervisors.delete(extra);
      if (extra.process.connected) extra.process.disconnect();
    }
  }

  /** Lets every supervisor go: idle ones exit, busy ones finish their job first. */
  releaseAll(): void {
    this.queue.length = 0;
    for (const supervisor of this.supervisors) {
      if (supervisor.process.connected) supervisor.process.disconnect();
      supervisor.process.unref();
    }
    this.supervisors.clear();
  }
}
