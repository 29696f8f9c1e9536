import type { JobState, Outcome, ProcessIdentity } from '../../lib/spool/state.js';
import type { SubmitRequest } from '../../lib/fleet/index.js';

export function newSubmission(options?: { agent?: string; host?: string | null; labels?: string[]; features?: string[]; submittedHost?: string; files?: Record<string, string> }): SubmitRequest & { state: JobState };
export function supervisorOf(host?: string): ProcessIdentity;
export function outcome(status?: Outcome['status'], extra?: Partial<Outcome>): Outcome;
