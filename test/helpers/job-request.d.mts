import type { JobRequest } from '../../lib/spool/state.js';

export function jobRequest(agent?: string, argv?: string[], overrides?: Partial<JobRequest>): JobRequest;
