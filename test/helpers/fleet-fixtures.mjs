// Job fixtures shared by the fleet tests, their child processes and the fleet benchmark.
import os from 'node:os';
import { newJobId } from '../../dist/spool/ids.js';
import { newJobState } from '../../dist/spool/state.js';
import { jobRequest } from './job-request.mjs';

/** A submit request for a new pending job. */
export function newSubmission({ agent = 'exec', host = null, labels = [], features = [], submittedHost = 'submitter', files } = {}) {
  const state = newJobState(newJobId(), jobRequest(agent, ['true'], { cwd: os.tmpdir() }));
  return { state, needs: { agent, host, labels, features }, submittedHost, files };
}

/** The supervisor identity a start transition records. */
export function supervisorOf(host = os.hostname()) {
  return { pid: process.pid, start_time: null, host, pid_ns: null };
}

export function outcome(status = 'done', extra = {}) {
  return {
    status,
    exit_code: status === 'done' ? 0 : null,
    signal: null,
    error: null,
    notified: null,
    result: { final_message: `finished by ${process.pid}`, cumulative_usage: null },
    session_id: null,
    usage: null,
    ...extra,
  };
}
