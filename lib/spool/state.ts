import { z } from 'zod';

/**
 * The job state machine, in one place. `state.json` holds a `JobState`; every change to it
 * goes through `transition()`, which knows the named transitions below and refuses any other.
 * Terminal states never change again.
 *
 *   submit ──▶ pending ──start──▶ running ──finish──▶ done | error | cancelled
 *                 │                  │ ▲
 *                 │                  └─┘ record_worker
 *                 ├──fail_to_start──▶ error       (cwd gone, binary missing, spawn refused)
 *                 └──cancel_pending─▶ cancelled
 *              running ──runner_lost──▶ error (its supervisor died without an exit record)
 */

export const SCHEMA_VERSION = 1;

export const JOB_STATUSES = ['pending', 'running', 'done', 'error', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export type TerminalStatus = 'done' | 'error' | 'cancelled';

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return status === 'done' || status === 'error' || status === 'cancelled';
}

export const ERROR_CODES = [
  'agent_not_found',
  'spawn_failed',
  'cwd_missing',
  'exit_nonzero',
  'agent_error',
  'timed_out',
  'stalled',
  'runner_lost',
  'internal_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const isoTime = z.string().datetime({ offset: true });
const nonNegativeInt = z.number().int().min(0);

export const jobRequestSchema = z.object({
  agent: z.string().min(1),
  argv: z.array(z.string()).nullable().describe('exec: the command and its arguments; agents: null'),
  cwd: z.string().min(1),
  timeout_seconds: z.number().positive().nullable().describe('wall-clock limit; null = the configured default'),
  stall_seconds: z.number().positive().nullable().describe('no-output limit; null = the configured default'),
  env_path: z.string().nullable().describe('PATH of the submitter, used to find the worker binary'),
  retry_of: z.string().nullable(),
  policy: z.string().nullable().describe('agents: suggest, auto-edit or full-auto'),
  model: z.string().nullable(),
  continue_of: z.string().nullable().describe('job whose worker session this job continues'),
  resume_session: z.string().nullable().describe("the worker CLI's session id to resume"),
  context_files: z.array(z.string()).describe('files inlined into prompt.txt, relative to cwd'),
  template: z.string().nullable().describe('prompt template used (confluence, pr), if any'),
});
export type JobRequest = z.infer<typeof jobRequestSchema>;

const processIdentity = z.object({
  pid: z.number().int().positive(),
  start_time: z.string().nullable().describe('boot id and start tick, to tell a live process from a reused pid'),
  host: z.string(),
  pid_ns: z.string().nullable().optional().describe('the PID namespace (Linux), so that a process in another one is never taken for dead'),
});
export type ProcessIdentity = z.infer<typeof processIdentity>;

const workerInfo = z.object({
  pid: z.number().int().positive(),
  pgid: z.number().int().positive(),
  argv: z.array(z.string()),
  start_time: z.string().nullable(),
});
export type WorkerInfo = z.infer<typeof workerInfo>;

const jobError = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  hint: z.string().optional(),
});
export type JobError = z.infer<typeof jobError>;

const usage = z.object({
  input_tokens: nonNegativeInt.nullable(),
  output_tokens: nonNegativeInt.nullable(),
  cached_input_tokens: nonNegativeInt.nullable(),
  cost_usd: z.number().min(0).nullable(),
});
export type Usage = z.infer<typeof usage>;

export const jobStateSchema = z.object({
  schema_version: z.literal(SCHEMA_VERSION),
  id: z.string().regex(/^[0-9a-z]{23}$/).describe('time-sortable job id (11 chars of creation time, 12 random)'),
  status: z.enum(JOB_STATUSES),
  seq: nonNegativeInt.describe('incremented on every write'),
  request: jobRequestSchema,
  created_at: isoTime,
  updated_at: isoTime,
  started_at: isoTime.nullable(),
  finished_at: isoTime.nullable(),
  attempt: nonNegativeInt.describe('number of the last claim (claim.<attempt>/) that started or ended the job'),
  runner_epoch: nonNegativeInt.nullable(),
  supervisor: processIdentity.nullable(),
  worker: workerInfo.nullable(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  error: jobError.nullable(),
  notified: z.object({ summary: z.string(), at: isoTime }).nullable(),
  result: z.object({
    final_message: z.string().nullable(),
    cumulative_usage: usage.nullable().describe("codex: the thread's running total, from which a continued job's own share is derived"),
  }).nullable(),
  session_id: z.string().nullable(),
  usage: usage.nullable(),
  duration_ms: nonNegativeInt.nullable(),
});
export type JobState = z.infer<typeof jobStateSchema>;
/** What the worker reported at its end (state.json's `result`). */
export type WorkerResult = NonNullable<JobState['result']>;

export function newJobState(id: string, request: JobRequest, now: Date = new Date()): JobState {
  const at = now.toISOString();
  return {
    schema_version: SCHEMA_VERSION,
    id,
    status: 'pending',
    seq: 0,
    request,
    created_at: at,
    updated_at: at,
    started_at: null,
    finished_at: null,
    attempt: 0,
    runner_epoch: null,
    supervisor: null,
    worker: null,
    exit_code: null,
    signal: null,
    error: null,
    notified: null,
    result: null,
    session_id: null,
    usage: null,
    duration_ms: null,
  };
}

/** What a job ended with; `finish` and `runner_lost` write it. */
export interface Outcome {
  status: TerminalStatus;
  exit_code: number | null;
  signal: string | null;
  error: JobError | null;
  notified: { summary: string; at: string } | null;
  result: WorkerResult | null;
  session_id: string | null;
  usage: Usage | null;
}

export type Transition =
  | { name: 'start'; attempt: number; epoch: number | null; supervisor: ProcessIdentity }
  | { name: 'record_worker'; worker: WorkerInfo }
  /** `worker` when it was not recorded while running (it had already exited when it would have been). */
  | { name: 'finish'; outcome: Outcome; worker?: WorkerInfo }
  | { name: 'fail_to_start'; attempt: number; error: JobError }
  | { name: 'cancel_pending'; attempt: number }
  | { name: 'runner_lost'; outcome: Outcome };

export const TRANSITION_SOURCES: Record<Transition['name'], readonly JobStatus[]> = {
  start: ['pending'],
  record_worker: ['running'],
  finish: ['running'],
  fail_to_start: ['pending'],
  cancel_pending: ['pending'],
  runner_lost: ['running'],
};

export class IllegalTransition extends Error {
  constructor(readonly from: JobStatus, readonly transition: Transition['name']) {
    super(`transition '${transition}' is not allowed from status '${from}'`);
    this.name = 'IllegalTransition';
  }
}

function durationSince(startedAt: string | null, now: Date): number | null {
  if (!startedAt) return null;
  return Math.max(0, now.getTime() - Date.parse(startedAt));
}

/** Applies one named transition and returns the new state; the input is not modified. */
export function transition(state: JobState, change: Transition, now: Date = new Date()): JobState {
  if (!TRANSITION_SOURCES[change.name].includes(state.status)) {
    throw new IllegalTransition(state.status, change.name);
  }
  const at = now.toISOString();
  const base = { ...state, seq: state.seq + 1, updated_at: at };
  switch (change.name) {
    case 'start':
      return {
        ...base,
        status: 'running',
        attempt: change.attempt,
        runner_epoch: change.epoch,
        supervisor: change.supervisor,
        started_at: at,
      };
    case 'record_worker':
      return { ...base, worker: change.worker };
    case 'finish':
    case 'runner_lost':
      return {
        ...base,
        ...change.outcome,
        worker: (change.name === 'finish' ? change.worker : undefined) ?? state.worker,
        finished_at: at,
        duration_ms: durationSince(state.started_at, now),
      };
    case 'fail_to_start':
      return { ...base, status: 'error', attempt: change.attempt, error: change.error, finished_at: at };
    case 'cancel_pending':
      return { ...base, status: 'cancelled', attempt: change.attempt, finished_at: at };
  }
}

/** Parses a state read from disk; unknown extra keys (from a newer version) are dropped. */
export function parseJobState(value: unknown): { ok: true; state: JobState } | { ok: false; reason: string } {
  const parsed = jobStateSchema.safeParse(value);
  if (parsed.success) return { ok: true, state: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : '(root)';
  return { ok: false, reason: `does not match the state schema at ${where}: ${issue?.message ?? 'invalid'}` };
}

/** The JSON Schema of `state.json`, shipped as `schema/state.schema.json`. */
export function stateJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(jobStateSchema, { target: 'draft-2020-12' }),
    $id: 'https://github.com/agent-async/agent-async-mcp/schema/state.schema.json',
    title: `agent-async job state (state.json), schema_version ${SCHEMA_VERSION}`,
  };
}
