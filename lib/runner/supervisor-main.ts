import type { Config } from '../config.js';
import { defaultHome, spoolPaths } from '../spool/layout.js';
import { ensureRunner } from './launch.js';
import { readRunnerInfo } from './lease.js';
import { logLine } from './log-line.js';
import { NO_CONFIG, type RunJobMessage, type SupervisorReply } from './messages.js';
import { superviseJob } from './supervisor.js';

/**
 * Entry point of a supervisor process, forked by the runner with an IPC channel. It handles
 * one job at a time. When the runner goes away it finishes the job in hand, starts a new
 * runner (so the queue goes on without waiting for the next submit) and exits.
 */
const paths = spoolPaths(defaultHome());
let busy = false;
/** The config the runner sent last; it sends it again only when it changed. */
let config: Config | undefined;
let orphaned = false;

function log(message: string): void {
  logLine(`${new Date().toISOString()} supervisor[${process.pid}] ${message}\n`);
}

function reply(message: SupervisorReply): void {
  if (!process.connected) return;
  // With a callback, a broken channel (the runner just died) is reported here instead of as
  // an 'error' event that would kill this process; the runner's successor reads the spool.
  process.send?.(message, undefined, {}, () => undefined);
}

/** The runner that forked this supervisor. */
const formerRunner = process.ppid;
const RESTART_CHECKS = 20;
const RESTART_CHECK_MS = 250;

/**
 * Starts a runner unless a live one leads. A runner that was SIGKILLed closes its end of the
 * channel a moment before it is seen dead: while runner.json still names it as a live leader,
 * this looks again (for a few seconds), so a job that runs on does not hold up the queue.
 */
function restartRunner(checksLeft = RESTART_CHECKS): void {
  try {
    if (ensureRunner(paths) !== 'running' || readRunnerInfo(paths)?.pid !== formerRunner || checksLeft === 0) return;
    setTimeout(() => restartRunner(checksLeft - 1), RESTART_CHECK_MS).unref();
  } catch (error) {
    log(`could not start a runner: ${(error as Error).message}`);
  }
}

process.on('message', (message: RunJobMessage) => {
  if (message?.type !== 'run') return;
  if (message.config) config = message.config;
  if (busy || !config) {
    reply({ type: 'claim_failed', jobId: message.jobId, reason: busy ? 'supervisor busy' : NO_CONFIG });
    return;
  }
  busy = true;
  superviseJob(paths, message, config, reply, log)
    .catch((error: unknown) => {
      // Exit rather than linger as the owner of a job we can no longer follow: the runner
      // sees this supervisor dead and finalizes the job (stopping its worker).
      log(`job ${message.jobId}: ${(error as Error).stack ?? String(error)}`);
      process.exit(1);
    })
    .finally(() => {
      busy = false;
      if (orphaned) {
        restartRunner();
        process.exit(0);
      }
    });
});

process.on('disconnect', () => {
  orphaned = true;
  if (!busy) process.exit(0);
  restartRunner();
});

for (const signal of ['SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);

reply({ type: 'ready' });
