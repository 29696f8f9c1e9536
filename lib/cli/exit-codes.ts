import type { UserErrorCode } from '../errors.js';
import type { JobSnapshot } from '../jobs.js';

/** Exit codes scripts can rely on (documented in the README). */
export const EXIT = {
  ok: 0,
  jobError: 1,
  badInput: 2,
  notFound: 3,
  jobCancelled: 4,
  unreadable: 5,
  /** apply: the job's changes conflict with the work tree; nothing was changed. */
  applyConflict: 6,
  noSpace: 74,
  internal: 70,
  config: 78,
  timeout: 124,
} as const;

export function exitForUserError(code: UserErrorCode): number {
  switch (code) {
    case 'not_found':
      return EXIT.notFound;
    case 'corrupt_state':
      return EXIT.unreadable;
    case 'config_invalid':
      return EXIT.config;
    case 'no_space':
      return EXIT.noSpace;
    case 'bad_input':
    case 'conflict':
      return EXIT.badInput;
  }
}

/** The exit code for jobs that were waited on: the worst outcome wins. */
export function exitForSnapshots(snaps: JobSnapshot[], timedOut: boolean): number {
  let code: number = EXIT.ok;
  const rank = (c: number): number => [EXIT.ok, EXIT.jobCancelled, EXIT.jobError, EXIT.unreadable, EXIT.notFound].indexOf(c as 0);
  for (const snap of snaps) {
    const next =
      snap.kind === 'missing' ? EXIT.notFound
        : snap.kind === 'corrupt' ? EXIT.unreadable
          : snap.state.status === 'error' ? EXIT.jobError
            : snap.state.status === 'cancelled' ? EXIT.jobCancelled
              : EXIT.ok;
    if (rank(next) > rank(code)) code = next;
  }
  return timedOut && code === EXIT.ok ? EXIT.timeout : code;
}
