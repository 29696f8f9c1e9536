import { z } from 'zod';

/**
 * The job state machine, in one place. `state.json` holds a `JobState`; every change to it
 * goes through `transition()`, which knows the named transitions below and refuses any other.
 * Terminal states never change again, but for `record_exit`: it adds the exit status, once, to a
 * job a `done` report ended while its worker still ran; and for an isolated job's `changes`
 * (applied, discarded).
 *
 *   submit ──▶ pending ──start──▶ running ──finish──▶ done | error | cancelled
 *                 │                  │ ▲
 *                 │                  └─┘ record_worker
 *                 ├──fail_to_start──▶ error       (cwd gone, binary missing, spawn refused)
 *                 └──cancel_pending─▶ cancelled
 *              running ──runner_lost──▶ error (its supervisor died without an exit record)
 *              running ──notify_done──▶ done  (a `done` report: ends the job at once, the worker
 *                                              still running gets its grace to exit)
 *                 done ──record_exit──▶ done  (adds only that worker's exit status, once)
 */

/**
 * 2: worktree isolation (`request.isolation`, `request.worktree`, `changes`, error code
 * `setup_failed`); a reader of version 1 would refuse such a state. States of version 1 still read.
 */
export const SCHEMA_VERSION = 2;

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
  'bad_job_file',
  'setup_failed',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const isoTime = z.string().datetime({ offset: true });
const nonNegativeInt = z.number().int().min(0);

export const ISOLATIONS = ['none', 'worktree'] as const;
export type Isolation = (typeof ISOLATIONS)[number];

/** What an isolated job starts from: the snapshot taken at submit (lib/worktree's Snapshot). */
const worktreeRequest = z.object({
  id: z.string().regex(/^[0-9a-z]{1,64}$/).describe('whose worktree, branch and refs: this job, or the job it continues'),
  repo_root: z.string().min(1).describe('top of the user\'s work tree the snapshot was taken from'),
  prefix: z.string().describe('cwd relative to repo_root: the worker runs there in the worktree'),
  base_commit: z.string().describe('the snapshot (refs/agent-async/<id>/base)'),
  from: z.enum(['work_tree', 'ref']).describe('work_tree: what the user saw at submit; ref: the committed base given'),
  ref: z.string().nullable().describe('the base given, or the branch HEAD was on'),
  head: z.string().nullable().describe('HEAD at submit (null in an empty repository)'),
  submodules: z.array(z.string()).describe('gitlink paths, empty folders in the worktree'),
  remote_url: z.string().optional().describe('fleet mode: the remote the snapshot was pushed to (refs/agent-async/<id>/base), so that another host can run the job'),
});
export type WorktreeRequest = z.infer<typeof worktreeRequest>;

const changedFile = z.object({
  path: z.string(),
  status: z.enum(['added', 'modified', 'deleted', 'renamed', 'copied', 'type_changed']),
  old_path: z.string().optional(),
  insertions: nonNegativeInt.nullable().describe('null for a binary file'),
  deletions: nonNegativeInt.nullable(),
});

const appliedRecord = z.object({
  at: isoTime,
  into: z.string().describe('the work tree the changes were written to'),
  base_commit: z.string(),
  head_commit: z.string(),
  files: z.array(z.string()),
});

/** An isolated job's work: its branch, what changed from its start, and what became of it. */
const jobChanges = z.object({
  branch: z.string(),
  base_commit: z.string().describe('what the worker started from'),
  head_commit: z.string(),
  files: z.array(changedFile),
  patch_bytes: nonNegativeInt.describe('size of changes.patch in the job folder'),
  applied: appliedRecord.nullable().describe('set by job_apply (or apply: true)'),
  apply_error: z.string().nullable().optional().describe('apply: true found a conflict or failed; nothing was changed'),
  discarded_at: isoTime.nullable().describe('set by job_discard: the branch and refs are gone'),
  warnings: z.array(z.string()).optional(),
  pushed_to: z.object({ url: z.string(), ref: z.string(), commit: z.string() }).nullable().optional()
    .describe('fleet mode, a job run on another host than its submitter\'s: where its branch was pushed (the submitter fetches it from there)'),
  push_error: z.string().nullable().optional().describe('fleet mode: the branch could not be pushed back; it stays in the runner host\'s cache'),
});
export type JobChanges = z.infer<typeof jobChanges>;

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
  isolation: z.enum(ISOLATIONS).optional().describe('worktree: the job runs in its own git worktree (absent in version 1: none)'),
  work_tree: z.string().nullable().optional().describe('top of the git work tree holding cwd, found at submit (null outside one): jobs without isolation never run two at once in one'),
  worktree: worktreeRequest.nullable().optional().describe('isolation worktree: the snapshot taken at submit'),
  apply: z.boolean().optional().describe('apply the changes to cwd when the job ends done'),
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

const notified = z.object({ summary: z.string(), at: isoTime });
const workerResult = z.object({
  final_message: z.string().nullable(),
  cumulative_usage: usage.nullable().describe("codex: the thread's running total, from which a continued job's own share is derived"),
});

/** Every status has these; a status's own fields come below. */
const common = {
  schema_version: z.union([z.literal(1), z.literal(SCHEMA_VERSION)]).describe('2 since worktree isolation; version 1 states still read'),
  id: z.string().regex(/^[0-9a-z]{23}$/).describe('time-sortable job id (11 chars of creation time, 12 random)'),
  seq: nonNegativeInt.describe('incremented on every write'),
  request: jobRequestSchema,
  created_at: isoTime,
  updated_at: isoTime,
  attempt: nonNegativeInt.describe('number of the last claim (claim.<attempt>/) that started or ended the job'),
};

/** What only an ended job holds; null before it ends. */
const notEnded = {
  finished_at: z.null(),
  exit_code: z.null(),
  signal: z.null(),
  error: z.null(),
  notified: z.null(),
  result: z.null(),
  session_id: z.null(),
  usage: z.null(),
  duration_ms: z.null(),
};

/** How a job ended; `error` and `started_at` are narrowed per terminal status. */
const ended = {
  finished_at: isoTime,
  runner_epoch: nonNegativeInt.nullable(),
  supervisor: processIdentity.nullable(),
  worker: workerInfo.nullable(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  notified: notified.nullable(),
  result: workerResult.nullable(),
  session_id: z.string().nullable(),
  usage: usage.nullable(),
  duration_ms: nonNegativeInt.nullable(),
  changes: jobChanges.nullable().optional().describe('isolated jobs: the work on the job\'s branch, recorded before the end is written'),
};

const pendingState = z.object({
  ...common,
  status: z.literal('pending'),
  started_at: z.null(),
  runner_epoch: z.null(),
  supervisor: z.null(),
  worker: z.null(),
  ...notEnded,
});

const runningState = z.object({
  ...common,
  status: z.literal('running'),
  started_at: isoTime,
  runner_epoch: nonNegativeInt.nullable(),
  supervisor: processIdentity.describe('the supervisor that started the worker and records its end'),
  worker: workerInfo.nullable().describe('null until the supervisor records the worker it started'),
  ...notEnded,
});

const doneState = z.object({
  ...common,
  ...ended,
  status: z.literal('done'),
  started_at: isoTime,
  error: z.null(),
});

const errorState = z.object({
  ...common,
  ...ended,
  status: z.literal('error'),
  started_at: isoTime.nullable().describe('null when the job failed before it started'),
  error: jobError,
});

const cancelledState = z.object({
  ...common,
  ...ended,
  status: z.literal('cancelled'),
  started_at: isoTime.nullable().describe('null when the job was cancelled before it started'),
  error: z.null(),
});

/** `state.json`: each status carries only the fields that status can have. */
export const jobStateSchema = z.discriminatedUnion('status', [pendingState, runningState, doneState, errorState, cancelledState]);
export type JobState = z.infer<typeof jobStateSchema>;
export type PendingState = z.infer<typeof pendingState>;
export type RunningState = z.infer<typeof runningState>;
type DoneState = z.infer<typeof doneState>;
export type EndedState = Extract<JobState, { status: TerminalStatus }>;

/** An ended isolated job's changes (null for any other job). */
export function changesOf(state: JobState): JobChanges | null {
  return isTerminal(state.status) ? (state as EndedState).changes ?? null : null;
}
/** What the worker reported at its end (state.json's `result`). */
export type WorkerResult = z.infer<typeof workerResult>;

/** The fields of a job that has not ended, all empty. */
const NOT_ENDED = {
  finished_at: null,
  exit_code: null,
  signal: null,
  error: null,
  notified: null,
  result: null,
  session_id: null,
  usage: null,
  duration_ms: null,
} as const;

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
    attempt: 0,
    runner_epoch: null,
    supervisor: null,
    worker: null,
    ...NOT_ENDED,
  };
}

interface OutcomeFields {
  exit_code: number | null;
  signal: string | null;
  notified: { summary: string; at: string } | null;
  result: WorkerResult | null;
  session_id: string | null;
  usage: Usage | null;
  changes?: JobChanges | null;
}

/** What a job ended with; `finish` and `runner_lost` write it. Only `error` carries an error. */
export type Outcome =
  | (OutcomeFields & { status: 'done'; error: null })
  | (OutcomeFields & { status: 'error'; error: JobError })
  | (OutcomeFields & { status: 'cancelled'; error: null });

export type Transition =
  | { name: 'start'; attempt: number; epoch: number | null; supervisor: ProcessIdentity }
  | { name: 'record_worker'; worker: WorkerInfo }
  /** `worker` when it was not recorded while running (it had already exited when it would have been). */
  | { name: 'finish'; outcome: Outcome; worker?: WorkerInfo }
  | { name: 'fail_to_start'; attempt: number; error: JobError }
  | { name: 'cancel_pending'; attempt: number }
  | { name: 'runner_lost'; outcome: Outcome }
  /** A `done` report ends the job before its worker has exited: `outcome` has no exit status yet. */
  | { name: 'notify_done'; outcome: Outcome & { status: 'done' }; worker: WorkerInfo }
  /** The exit of the worker of a job that `notify_done` ended. */
  | { name: 'record_exit'; exit_code: number | null; signal: string | null }
  /** An ended isolated job's changes were applied or discarded. */
  | { name: 'record_changes'; changes: JobChanges };

export const TRANSITION_SOURCES: Record<Transition['name'], readonly JobStatus[]> = {
  start: ['pending'],
  record_worker: ['running'],
  finish: ['running'],
  fail_to_start: ['pending'],
  cancel_pending: ['pending'],
  runner_lost: ['running'],
  notify_done: ['running'],
  record_exit: ['done'],
  record_changes: ['done', 'error', 'cancelled'],
};

/** A job that a `done` report ended while its worker ran, whose worker's exit is not recorded yet. */
export function awaitsWorkerExit(state: JobState): boolean {
  return state.status === 'done' && state.notified !== null && state.worker !== null && state.exit_code === null && state.signal === null;
}

export class IllegalTransition extends Error {
  constructor(readonly from: JobStatus, readonly transition: Transition['name']) {
    super(`transition '${transition}' is not allowed from status '${from}'`);
    this.name = 'IllegalTransition';
  }
}

/** A job that never started ends with every run field empty. */
function endedBeforeStart(attempt: number, at: string) {
  return {
    attempt,
    started_at: null,
    runner_epoch: null,
    supervisor: null,
    worker: null,
    ...NOT_ENDED,
    finished_at: at,
  };
}

/**
 * Applies one named transition and returns the new state; the input is not modified.
 * TRANSITION_SOURCES is checked first, so each case knows the status it starts from.
 */
export function transition(state: JobState, change: Transition, now: Date = new Date()): JobState {
  if (!TRANSITION_SOURCES[change.name].includes(state.status) || (change.name === 'record_exit' && !awaitsWorkerExit(state))) {
    throw new IllegalTransition(state.status, change.name);
  }
  const at = now.toISOString();
  const kept = {
    schema_version: state.schema_version,
    id: state.id,
    seq: state.seq + 1,
    request: state.request,
    created_at: state.created_at,
    updated_at: at,
  };
  switch (change.name) {
    case 'start':
      return {
        ...kept,
        ...NOT_ENDED,
        status: 'running',
        attempt: change.attempt,
        started_at: at,
        runner_epoch: change.epoch,
        supervisor: change.supervisor,
        worker: null,
      };
    case 'record_worker':
      return { ...(state as RunningState), ...kept, worker: change.worker };
    case 'finish':
    case 'runner_lost':
    case 'notify_done': {
      const running = state as RunningState;
      return {
        ...kept,
        ...change.outcome,
        attempt: running.attempt,
        started_at: running.started_at,
        runner_epoch: running.runner_epoch,
        supervisor: running.supervisor,
        worker: (change.name === 'runner_lost' ? undefined : change.worker) ?? running.worker,
        finished_at: at,
        duration_ms: Math.max(0, now.getTime() - Date.parse(running.started_at)),
      };
    }
    case 'record_exit':
      return { ...(state as DoneState), ...kept, exit_code: change.exit_code, signal: change.signal };
    case 'fail_to_start':
      return { ...kept, ...endedBeforeStart(change.attempt, at), status: 'error', error: change.error };
    case 'cancel_pending':
      return { ...kept, ...endedBeforeStart(change.attempt, at), status: 'cancelled' };
    case 'record_changes':
      return { ...(state as EndedState), ...kept, changes: change.changes };
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
