import { isUserError } from '../errors.js';
import * as jobs from '../jobs.js';
import type { JobSnapshot } from '../jobs.js';
import { EXIT, exitForUserError } from './exit-codes.js';

/** What every command shares: its common options, printing, and turning errors into exit codes. */

export interface Common {
  json?: boolean;
  home?: string;
}

export function openContext(args: Common): jobs.JobsContext {
  return jobs.openContext({ home: args.home });
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function snapshotJson(snap: JobSnapshot): unknown {
  if (snap.kind === 'ok') return snap.state;
  if (snap.kind === 'corrupt') return { id: snap.id, status: 'unreadable', error: { code: 'corrupt_state', message: snap.reason } };
  return { id: snap.id, status: 'missing' };
}

/** Runs a command body and turns its result or error into output and an exit code. */
export function action<A extends Common>(body: (args: A) => Promise<number | void> | number | void) {
  return async (args: A): Promise<void> => {
    try {
      process.exitCode = (await body(args)) ?? EXIT.ok;
    } catch (caught) {
      const error = jobs.spoolSpaceError(caught, jobs.spoolHome()) ?? caught;
      if (isUserError(error)) {
        if (args.json) printJson({ error: { code: error.code, field: error.field ?? null, message: error.message } });
        process.stderr.write(`agent-async: ${error.message}\n`);
        process.exitCode = exitForUserError(error.code);
        return;
      }
      process.stderr.write(`agent-async: internal error: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = EXIT.internal;
    } finally {
      await closeQueueConnections();
    }
  };
}

/** Fleet mode: the queue's pool would keep the command alive. */
async function closeQueueConnections(): Promise<void> {
  const cut = await jobs.closeStores();
  if (cut > 0) {
    const what = cut === 1 ? 'a connection' : `${cut} connections`;
    process.stderr.write(`agent-async: the queue's server (queue_url) did not hang up ${what} after this command said goodbye; cut after a short wait (is PostgreSQL paused or cut off?)\n`);
  }
}

