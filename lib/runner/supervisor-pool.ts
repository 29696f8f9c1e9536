import { fork, type ChildProcess } from 'node:child_process';
import type { SpoolPaths } from '../spool/layout.js';
import { SUPERVISOR_ENTRY, runnerEnvironment } from './launch.js';
import { NO_CONFIG, type RunJobMessage, type SupervisorReply } from './messages.js';

/**
 * The runner's supervisor processes. Each is forked detached (its own session, so it
 * outlives the runner) with an IPC channel; an idle one is reused for the next job.
 */

interface Supervisor {
  process: ChildProcess;
  ready: Promise<void>;
  jobId: string | null;
  /** The config object last sent to it. */
  sentConfig: RunJobMessage['config'];
}

export interface PoolEvents {
  onReply(jobId: string, reply: SupervisorReply): void;
  /** A supervisor process ended while it had a job (the job is left to reconciliation). */
  onLost(jobId: string): void;
  log(message: string): void;
}

export class SupervisorPool {
  private readonly supervisors = new Set<Supervisor>();

  constructor(
    private readonly paths: SpoolPaths,
    private readonly logFd: number,
    private readonly events: PoolEvents,
  ) {}

  private spawnSupervisor(): Supervisor {
    const child = fork(SUPERVISOR_ENTRY, [], {
      detached: true,
      stdio: ['ignore', this.logFd, this.logFd, 'ipc'],
      env: runnerEnvironment(process.env, this.paths),
      serialization: 'json',
      // a small young generation: a supervisor streams output through short-lived buffers
      execArgv: ['--max-semi-space-size=2'],
    });
    let markReady: () => void = () => undefined;
    const supervisor: Supervisor = {
      process: child,
      ready: new Promise((resolve) => (markReady = resolve)),
      jobId: null,
      sentConfig: undefined,
    };
    child.on('message', (reply: SupervisorReply) => {
      if (reply.type === 'ready') return markReady();
      if (reply.type === 'claim_failed' && reply.reason === NO_CONFIG) supervisor.sentConfig = undefined;
      if (reply.type === 'claim_failed' || reply.type === 'finished') supervisor.jobId = null;
      this.events.onReply(reply.jobId, reply);
    });
    child.on('exit', (code, signal) => {
      this.supervisors.delete(supervisor);
      markReady();
      if (supervisor.jobId !== null) {
        this.events.log(`supervisor pid ${child.pid} ended (${signal ?? code}) while it had job ${supervisor.jobId}`);
        const jobId = supervisor.jobId;
        supervisor.jobId = null;
        this.events.onLost(jobId);
      }
    });
    child.on('error', (error) => this.events.log(`supervisor pid ${child.pid}: ${error.message}`));
    this.supervisors.add(supervisor);
    return supervisor;
  }

  /** Hands a job to an idle supervisor, starting one when none is idle. */
  async dispatch(message: RunJobMessage): Promise<void> {
    const idle = [...this.supervisors].find((s) => s.jobId === null && s.process.connected);
    const supervisor = idle ?? this.spawnSupervisor();
    supervisor.jobId = message.jobId;
    await supervisor.ready;
    if (!supervisor.process.connected) {
      supervisor.jobId = null;
      this.events.onReply(message.jobId, { type: 'claim_failed', jobId: message.jobId, reason: 'supervisor exited' });
      return;
    }
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

  /** Trims idle supervisors down to `keep`. */
  trim(keep: number): void {
    const idle = [...this.supervisors].filter((s) => s.jobId === null);
    while (idle.length > keep) {
      const extra = idle.pop()!;
      this.supervisors.delete(extra);
      if (extra.process.connected) extra.process.disconnect();
    }
  }

  /** Lets every supervisor go: idle ones exit, busy ones finish their job first. */
  releaseAll(): void {
    for (const supervisor of this.supervisors) {
      if (supervisor.process.connected) supervisor.process.disconnect();
      supervisor.process.unref();
    }
    this.supervisors.clear();
  }
}
