import type { Config } from '../config.js';
import type { TerminalStatus } from '../spool/state.js';

/** What the runner and its supervisor processes say to each other over the IPC channel. */

export interface RunJobMessage {
  type: 'run';
  jobId: string;
  attempt: number;
  epoch: number | null;
  /**
   * The runner's config, so a job runs under the config its runner dispatched it with; left
   * out when it is the one this supervisor was sent last.
   */
  config?: Config;
}

export type SupervisorReply =
  | { type: 'ready' }
  /** The worker and its processes are gone (the slot is free); recording its end follows. */
  | { type: 'exited'; jobId: string }
  | { type: 'claim_failed'; jobId: string; reason: string }
  | { type: 'finished'; jobId: string; status: TerminalStatus | 'unknown' };

/** The reason a supervisor refuses a job when it was never sent a config. */
export const NO_CONFIG = 'no config was sent';

/** How the reason starts when the pool gives a job back because no supervisor could start for it. */
export const SUPERVISOR_DID_NOT_START = 'no supervisor could start';

/** How the reason starts when a supervisor gives a job back because the spool cannot be written (a full disk). */
export const SPOOL_UNWRITABLE = 'the spool cannot be written';
