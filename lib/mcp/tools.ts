import { z } from 'zod';
import { UserError } from '../errors.js';
import type { JobsContext } from '../context.js';
import * as inputs from '../inputs.js';
import type { JobSnapshot, SubmitInput, SubmitResult } from '../jobs.js';
import { jobs } from './lazy-jobs.js';
import { listItem, snapshotAnswer } from './results.js';
import { worktreeTools } from './worktree-tools.js';

/**
 * The MCP tools: the 13 of the Python original (same names, parameters, defaults and result
 * keys) and the ones beyond it. Each tool's input schema is its operation's schema from
 * `lib/inputs.ts` (or the tool's view of it, e.g. minutes where the operation takes seconds),
 * with descriptions that teach the calling model the loop (start, then wait again while the
 * answer is `timeout`); an output schema, annotations, and a handler over `lib/jobs.ts`.
 */

export interface ToolContext {
  jobs: JobsContext;
  session: Session;
  signal: AbortSignal;
  /** Reports progress; null when the caller did not ask for it (no progress token). */
  progress: ((progress: number, total: number | undefined, message: string) => Promise<void>) | null;
  progressEveryMs: number;
}

/** What one server process remembers for `*_await_any` without ids. */
export class Session {
  readonly started = new Set<string>();
  readonly reported = new Set<string>();
}

export type ToolGroup = 'codex' | 'claude' | 'gemini' | 'cursor' | 'generic' | 'queue';
export const TOOL_GROUPS: readonly ToolGroup[] = ['codex', 'claude', 'gemini', 'cursor', 'generic', 'queue'];

export interface ToolDefinition {
  name: string;
  group: ToolGroup;
  title: string;
  description: string;
  /** Strict: an unknown parameter is refused, naming it. */
  input: z.ZodObject;
  output: z.ZodObject;
  annotations: { readOnlyHint: boolean; destructiveHint: boolean; idempotentHint: boolean; openWorldHint: boolean };
  /** Start tools can also run as an MCP task (2025-11-25) for clients that ask. */
  taskCapable: boolean;
  /** Takes arguments already checked against `input`. */
  handler: (args: unknown, ctx: ToolContext) => Promise<Record<string, unknown>>;
}

type Answer = Record<string, unknown> | Promise<Record<string, unknown>>;

/** A tool whose handler sees its arguments typed by its own input schema. */
export function defineTool<S extends z.ZodObject>(
  definition: Omit<ToolDefinition, 'input' | 'handler'> & { input: S; handler: (args: z.output<S>, ctx: ToolContext) => Answer },
): ToolDefinition {
  return { ...definition, handler: async (args, ctx) => definition.handler(args as z.output<S>, ctx) };
}

const WAIT_SECONDS = inputs.WAIT_DEFAULT_SECONDS;

// ── input pieces: the operations' fields, described for a calling model ───────────────────

const jobId = inputs.jobId.describe('The job_id returned by a *_start tool.');
const cwd = inputs.cwd.describe('Absolute path of the directory the agent works in (it must exist).');
const prompt = inputs.prompt.describe('The task for the agent, complete and self-contained: it sees nothing of your conversation.');
const approvalPolicy = inputs.approvalPolicy.optional()
  .describe('suggest = read-only; auto-edit = may edit files inside cwd (the default, from config); full-auto = no sandbox and no prompts (use with care).');
const contextFiles = inputs.contextFiles.optional()
  .describe('Files (relative to cwd, inside it) whose text is inlined into the prompt.');
const model = inputs.model.optional().describe("Model name for the agent CLI; omit to use the CLI's default.");
const timeoutMinutes = inputs.positiveLimit.optional().describe('Wall-clock limit of the job in minutes (default from config); the job is stopped when it is reached.');
const waitSeconds = inputs.waitInput.shape.timeout_seconds
  .describe(`How long to block, in seconds (default ${WAIT_SECONDS}, at most the configured maximum, 55 by default). If the job is not done by then the answer has status "timeout": call the wait tool again.`);

const verbose = z.boolean().default(false)
  .describe('Answer everything (cwd, times, the whole prompt preview, usage, the raw output tail, the full changes). Default: a compact answer with what you need to decide.');
const isolation = inputs.isolation.optional()
  .describe('"worktree": the job runs in its own git worktree, made from what cwd\'s work tree holds now (uncommitted edits included), so several jobs can work on one repository at once without touching your files; its work comes back as a branch: see job_diff, job_apply, job_discard. "none" (default, from config): it runs in cwd itself.');
const base = inputs.base.optional().describe('isolation "worktree" only: start from this committed branch, tag or commit instead of the work tree.');
const apply = z.boolean().optional().describe('isolation "worktree" only: apply the changes to cwd when the job ends done (a conflict changes nothing and is reported in the result).');
const host = inputs.host.optional().describe('Fleet mode only (queue_url set): run the job on this host (a runner\'s host_name). Default: the host it is started on (isolated jobs too).');
const labels = inputs.labels.optional().describe('Fleet mode only: run the job only on a host whose runner has every one of these labels, e.g. ["gpu"].');
const placement = { host, labels };

/** The options every job-starting tool takes besides its task. */
const jobOptions = { approval_policy: approvalPolicy, context_files: contextFiles, model, timeout_minutes: timeoutMinutes, isolation, base, apply, ...placement };
const startShape = { prompt, cwd, ...jobOptions };

/** The submit operation's job options, from a start tool's (minutes become seconds). */
function submitOptions(args: { cwd: string; approval_policy?: string; context_files?: string[]; model?: string; timeout_minutes?: number; isolation?: 'none' | 'worktree'; base?: string; apply?: boolean; host?: string; labels?: string[] }) {
  return {
    cwd: args.cwd,
    host: args.host,
    labels: args.labels,
    isolation: args.isolation,
    base: args.base,
    apply: args.apply,
    approval_policy: args.approval_policy as SubmitInput['approval_policy'],
    context_files: args.context_files,
    model: args.model,
    timeout_seconds: args.timeout_minutes === undefined ? undefined : args.timeout_minutes * 60,
  };
}

/** An operation's schema with descriptions for a calling model on the fields named. */
function described<S extends z.ZodObject>(schema: S, descriptions: Partial<Record<keyof S['shape'], string>>): S {
  const shape = Object.fromEntries(Object.entries(descriptions).map(([key, text]) => [key, (schema.shape[key] as z.ZodType).describe(text as string)]));
  return schema.extend(shape) as unknown as S;
}

// ── output schemas (loose: clients may get more keys than listed) ─────────────────────────

const usageSchema = z.looseObject({
  input_tokens: z.number().nullable(),
  output_tokens: z.number().nullable(),
  cached_input_tokens: z.number().nullable(),
  cost_usd: z.number().nullable(),
}).nullable();
const errorSchema = z.looseObject({ code: z.string(), message: z.string(), hint: z.string().optional() }).nullable();

const startOutput = z.looseObject({
  job_id: z.string(),
  status: z.string().describe('"pending": queued; it starts as soon as a slot is free'),
  message: z.string(),
  agent: z.string(),
  cwd: z.string(),
  notices: z.array(z.string()).optional().describe('only when there are some: what was changed or clamped'),
});

const resultShape = {
  job_id: z.string(),
  status: z.string().describe('"done", "error", "cancelled" when the job ended; "timeout" when the wait ended first'),
  job_status: z.string().optional().describe('the job\'s own status: pending, running, done, error, cancelled'),
  duration_ms: z.number().nullable().optional().describe('how long the job has run (so far, while it runs)'),
  activity: z.string().nullable().optional().describe('verbose, while it runs: one line of what the worker is doing now (the command it runs, the tool it calls), read from its output'),
  agent: z.string().optional(),
  prompt: z.string().nullable().optional().describe('ended jobs: the first 80 characters of the task, to tell jobs apart (verbose: up to 2000)'),
  exit_code: z.number().nullable().optional(),
  output: z.string().nullable().optional().describe('while it runs: one line of what the worker is doing now (the command it runs, the tool it calls; "" when nothing says). Ended jobs: the agent\'s final message; exec jobs: the last 15 lines of output. verbose: the raw output tail. All of it: job_output'),
  summary: z.string().nullable().optional().describe('what the worker reported with agent_notify_done'),
  error: errorSchema.optional(),
  token_usage: usageSchema.optional().describe('ended jobs: tokens used (and cost where the CLI says)'),
  usage: usageSchema.optional().describe('null unless verbose: the same counts as token_usage'),
  changes: z.looseObject({}).nullable().optional().describe('isolated jobs: the changed files on the job\'s branch ("M path +3 -1")'),
  cwd: z.string().optional(),
  started_at: z.string().nullable().optional(),
  finished_at: z.string().nullable().optional(),
  final_message: z.string().nullable().optional().describe('verbose only (by default the same text is in output), as are session_id, created_at and the raw output tail'),
  session_id: z.string().nullable().optional(),
  message: z.string(),
};
const resultOutput = z.looseObject({ ...resultShape, notices: z.array(z.string()).optional() });
const awaitAnyOutput = z.looseObject({
  ...resultShape,
  status: z.string().describe('the first ended job\'s status ("done", "error", "cancelled"); "timeout" when none ended within the wait; "idle" when there is nothing to wait for: no job of this conversation is pending, running, or ended unreported (start one, or stop waiting)'),
  job_id: z.string().nullable(),
  completed: z.array(z.looseObject(resultShape)).describe('the other jobs that ended too, besides the one at the top level (verbose: every one, the top-level one included); report each one'),
  pending_job_ids: z.array(z.string()).describe('jobs still pending or running'),
  notices: z.array(z.string()).optional().describe('only when there are some (always with verbose)'),
});

// ── helpers ───────────────────────────────────────────────────────────────────────────────

function startMessage(waitTool: string): string {
  return `Queued. Call ${waitTool} with this job_id until status is not "timeout".`;
}

async function started(ctx: ToolContext, submitted: Promise<SubmitResult>, waitTool: string) {
  const result = await submitted;
  ctx.session.started.add(result.job_id);
  const answer = {
    job_id: result.job_id,
    status: result.state.status,
    message: startMessage(waitTool),
    agent: result.state.request.agent,
    cwd: result.state.request.cwd,
  };
  return withNotices(answer, result.notices, false);
}

/** Runs a wait while sending progress (elapsed time, status, last output line) every few seconds. */
async function withProgress<T>(ctx: ToolContext, ids: string[], total: number, wait: () => Promise<T>): Promise<T> {
  const progress = ctx.progress;
  if (!progress) return wait();
  const startedAt = Date.now();
  let last = 0;
  const timer = setInterval(() => {
    const first = ids[0] && !jobs.isFleet(ctx.jobs) ? jobs.readJob(ctx.jobs.paths, ids[0]) : undefined;
    const status = first?.kind === 'ok' ? first.state.status : 'unknown';
    const tail = first?.kind === 'ok' ? jobs.currentActivity(ctx.jobs, first.state) ?? '' : '';
    // progress must grow with every notification: elapsed seconds to a tenth, never repeated
    const elapsed = Math.max(Math.round((Date.now() - startedAt) / 100) / 10, last + 0.1);
    last = elapsed;
    const what = ids.length === 1 ? `job ${ids[0]}${first ? ` ${status}` : ''}` : `${ids.length} jobs`; // fleet mode: no spool read here
    void progress(elapsed, total, `${what}, ${Math.round(elapsed)} s${tail ? `: ${tail.slice(0, 200)}` : ''}`).catch(() => undefined);
  }, ctx.progressEveryMs);
  try {
    return await wait();
  } finally {
    clearInterval(timer);
  }
}

async function waitTool(ctx: ToolContext, { verbose, ...args }: z.output<typeof inputs.waitInput> & { verbose: boolean }, toolName: string) {
  const answer = await withProgress(ctx, [args.job_id], args.timeout_seconds, () => jobs.wait(ctx.jobs, args, { signal: ctx.signal }));
  if (answer.snapshot.kind === 'ok' && jobs.isTerminal(answer.snapshot.state.status)) ctx.session.reported.add(answer.snapshot.id);
  return withNotices(snapshotAnswer(ctx.jobs, answer.snapshot, toolName, verbose), answer.notices, verbose);
}

/** Notices go along when there are some (always with verbose). */
function withNotices<T extends Record<string, unknown>>(answer: T, notices: string[], verbose: boolean): T & { notices?: string[] } {
  return notices.length > 0 || verbose ? { ...answer, notices } : answer;
}

async function awaitAnyTool(ctx: ToolContext, ids: string[] | undefined, timeoutSeconds: number, toolName: string, verbose: boolean) {
  let candidates = ids;
  if (!candidates || candidates.length === 0) {
    // Lossless between calls: everything this server started, plus every job seen active at
    // any call, stays a candidate until it has been reported once.
    for (const id of await jobs.openJobIds(ctx.jobs)) ctx.session.started.add(id);
    candidates = [...ctx.session.started].filter((id) => !ctx.session.reported.has(id));
  }
  // Everything was reported: idle, even if a job just reported still has its active/ marker
  // (it goes a moment after the terminal write), which awaitAny without ids would wait on.
  const waitOn = candidates;
  const answer = waitOn.length === 0
    ? { finished: [], open: [], notices: [jobs.NOTHING_TO_AWAIT] }
    : await withProgress(ctx, waitOn, timeoutSeconds, () =>
      jobs.awaitAny(ctx.jobs, { job_ids: waitOn, timeout_seconds: timeoutSeconds }, { signal: ctx.signal }));
  const completed = answer.finished.map((snap: JobSnapshot) => snapshotAnswer(ctx.jobs, snap, toolName, verbose));
  for (const snap of answer.finished) ctx.session.reported.add(snap.id);
  const pending = answer.open.map((snap) => snap.id);
  const [first, ...others] = completed;
  if (first) {
    const more = others.length > 0 ? ` ${completed.length} jobs ended; the others are in "completed".` : '';
    // compact: the top-level job is not repeated in completed (its output would cost twice)
    return withNotices({ ...first, message: `${String(first.message)}${more}`, completed: verbose ? completed : others, pending_job_ids: pending }, answer.notices, verbose);
  }
  const message = pending.length === 0
    ? 'Idle: no job of this conversation is pending, running or unreported.'
    : `None ended yet; ${pending.length} pending or running. Call ${toolName} again.`;
  return withNotices({ job_id: null, status: pending.length === 0 ? 'idle' : 'timeout', completed, pending_job_ids: pending, message }, answer.notices, verbose);
}

// ── the tools ─────────────────────────────────────────────────────────────────────────────

const START_ANNOTATIONS = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
const WAIT_ANNOTATIONS = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

function agentStartTool(name: string, agent: string, group: ToolGroup, label: string, waitName: string): ToolDefinition {
  return defineTool({
    name,
    group,
    title: `Start a job for ${label}`,
    description: `Queue a task for ${label} and return a job_id at once (never blocks). Then call ${waitName}(job_id) in a loop: each call blocks up to ${WAIT_SECONDS} s and answers status "timeout" while the job runs. Jobs run side by side (up to the configured concurrency; never two without isolation in one work tree) and survive restarts. Several tasks on one repository: start each with isolation "worktree", take each result with job_await_any, then job_diff / job_apply it.`,
    input: z.strictObject(startShape),
    output: startOutput,
    annotations: START_ANNOTATIONS,
    taskCapable: true,
    handler: (args, ctx) => started(ctx, jobs.submit(ctx.jobs, { ...submitOptions(args), agent, prompt: args.prompt }), waitName),
  });
}

function agentWaitTool(name: string, group: ToolGroup, label: string): ToolDefinition {
  return defineTool({
    name,
    group,
    title: `Wait for a ${label} job`,
    description: `Block until the job ends or timeout_seconds pass (default ${WAIT_SECONDS}, below the usual 60 s tool-call limit). While it runs the answer is short: status "timeout", the elapsed time and what the worker is doing now (in output); then call ${name} again. When it ended: status done/error/cancelled, output (the agent's final message; exec: the last lines), error, token_usage, changed files. verbose: true answers everything; job_output pages the whole output. Works for any job_id, whatever agent runs it.`,
    input: z.strictObject({ job_id: jobId, timeout_seconds: waitSeconds, verbose }),
    output: resultOutput,
    annotations: WAIT_ANNOTATIONS,
    taskCapable: false,
    handler: (args, ctx) => waitTool(ctx, args, name),
  });
}

export function allTools(): ToolDefinition[] {
  return [
    agentStartTool('codex_start', 'codex', 'codex', 'OpenAI Codex', 'codex_wait'),
    agentWaitTool('codex_wait', 'codex', 'Codex'),
    defineTool({
      name: 'codex_await_any',
      group: 'codex',
      title: 'Wait for any job',
      description: `Block until any job started from this conversation (or pending/running when you call) ends, up to timeout_seconds (default ${WAIT_SECONDS}). Answers the first ended job at the top level (as codex_wait does) and any other ended ones in "completed"; a job that ended between two calls is still reported. Status "timeout": none ended yet, call again. Status "idle": nothing left to wait for (every job was reported).`,
      input: z.strictObject({ timeout_seconds: waitSeconds, verbose }),
      output: awaitAnyOutput,
      annotations: WAIT_ANNOTATIONS,
      taskCapable: false,
      handler: (args, ctx) => awaitAnyTool(ctx, undefined, args.timeout_seconds, 'codex_await_any', args.verbose),
    }),
    agentStartTool('cursor_start', 'cursor', 'cursor', "Cursor's cursor-agent", 'cursor_wait'),
    agentWaitTool('cursor_wait', 'cursor', 'Cursor'),
    agentStartTool('gemini_start', 'gemini', 'gemini', 'Google Gemini CLI', 'gemini_wait'),
    agentWaitTool('gemini_wait', 'gemini', 'Gemini'),
    defineTool({
      name: 'gemini_confluence_start',
      group: 'gemini',
      title: 'Draft (and optionally publish) a Confluence page with Gemini',
      description: 'Queue a Gemini job that writes a Confluence page about the code in cwd into confluence-page.md, and publishes it only when publish is true and a Confluence tool is available to Gemini. Returns a job_id at once; then call gemini_wait in a loop.',
      input: described(inputs.confluenceInput, {
        title: 'Title of the page.',
        space_key: 'Confluence space key, for publishing.',
        parent_page: 'Parent page title or id, for publishing.',
        instructions: 'What the page should cover, and how.',
        publish: 'Publish the page (default: only draft it).',
      }).extend({ cwd, ...jobOptions }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: ({ title, space_key, parent_page, instructions, publish, ...job }, ctx) =>
        started(ctx, jobs.submitConfluencePage(ctx.jobs, { title, space_key, parent_page, instructions, publish }, submitOptions(job)), 'gemini_wait'),
    }),
    defineTool({
      name: 'gemini_pr_start',
      group: 'gemini',
      title: 'Prepare (and optionally open) a pull request with Gemini',
      description: 'Queue a Gemini job that makes the change pr_goal describes on a new branch in the git repository at cwd, commits it and writes pr-description.md; it pushes and opens the pull request only when publish is true. Returns a job_id at once; then call gemini_wait in a loop.',
      input: described(inputs.pullRequestInput, {
        pr_goal: 'What the pull request should achieve.',
        base_branch: 'Branch to start from and target (default: the current one).',
        title: 'Title of the pull request.',
        draft: 'Open it as a draft (default true).',
        publish: 'Push and open the pull request (default: only prepare it locally).',
        instructions: 'Further guidance.',
      }).extend({ cwd, ...jobOptions }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: ({ pr_goal, base_branch, title, draft, publish, instructions, ...job }, ctx) =>
        started(ctx, jobs.submitPullRequest(ctx.jobs, { pr_goal, base_branch, title, draft, publish, instructions }, submitOptions(job)), 'gemini_wait'),
    }),
    defineTool({
      name: 'job_list',
      group: 'queue',
      title: 'List jobs',
      description: 'The newest jobs of every agent, newest first, with status, agent, cwd and a prompt preview.',
      input: described(inputs.listInput, {
        limit: `How many (1-${inputs.LIST_MAX}, default ${inputs.LIST_DEFAULT}).`,
        status: 'Only jobs with this status.',
      }),
      output: z.looseObject({ jobs: z.array(z.looseObject({ job_id: z.string(), status: z.string() })), count: z.number() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const snaps = await jobs.listJobs(ctx.jobs, args);
        return { jobs: snaps.map((snap) => listItem(ctx.jobs, snap)), count: snaps.length };
      },
    }),
    defineTool({
      name: 'job_cancel',
      group: 'queue',
      title: 'Cancel a job',
      description: 'Cancel a job: a pending one never starts; a running one is stopped with its whole process tree (TERM, a grace period, KILL). Its partial output is kept. Cancelling a job that already ended changes nothing.',
      input: described(inputs.jobRef, { job_id: 'The job_id returned by a *_start tool.' }),
      output: z.looseObject({ job_id: z.string(), status: z.string(), cancelled: z.boolean(), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const answer = await jobs.cancel(ctx.jobs, args);
        const messages = {
          cancelled: `Job ${answer.state.id} was cancelled.`,
          already_finished: `Job ${answer.state.id} had already ended (${answer.state.status}); nothing changed.`,
          stopping: `Cancel requested for job ${answer.state.id}; it is still stopping.`,
        };
        return { job_id: answer.state.id, status: answer.state.status, cancelled: answer.result === 'cancelled', message: messages[answer.result] };
      },
    }),
    defineTool({
      name: 'queue_status',
      group: 'queue',
      title: 'Queue status',
      description: 'Whether a job is running, how many wait, and the health of the runner that runs them; in fleet mode also every host of the queue (agents, labels, load, capacity, lease) and why each pending job waits.',
      input: inputs.queueInput,
      output: z.looseObject({ busy: z.boolean(), running_job_id: z.string().nullable(), pending_count: z.number() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: async (_args, ctx) => {
        const queue = await jobs.queueOverview(ctx.jobs);
        const running = queue.running.map((state) => state.id);
        return {
          busy: running.length > 0,
          running_job_id: running[0] ?? null,
          running_job_ids: running,
          running_count: running.length,
          pending_count: queue.pending.length,
          concurrency: ctx.jobs.config.concurrency,
          runner: queue.runner,
          ...(queue.fleet ? { fleet: queue.fleet } : {}),
        };
      },
    }),
    defineTool({
      name: 'agent_notify_done',
      group: 'queue',
      title: 'Report a job done',
      description: 'Called BY a worker agent when its job is finished (its job id is in its prompt and in $AGENT_ASYNC_JOB_ID). Marks the job done with the summary; waiters in every process wake at once. A worker still running after a short grace period is stopped.',
      input: described(inputs.notifyInput, { job_id: 'The job_id returned by a *_start tool.', summary: 'One line saying what was done.' }),
      output: z.looseObject({ ok: z.boolean(), job_id: z.string(), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const answer = await jobs.notifyJobDone(ctx.jobs, args);
        return { ok: answer.accepted, job_id: answer.state.id, message: answer.message };
      },
    }),
    agentStartTool('claude_start', 'claude', 'claude', 'Claude Code', 'claude_wait'),
    agentWaitTool('claude_wait', 'claude', 'Claude Code'),
    defineTool({
      name: 'agent_start',
      group: 'generic',
      title: 'Start a job with any agent',
      description: 'Queue a job for any agent: codex, claude, gemini, cursor, a custom agent from config.json, or exec (runs argv, no shell: for long test suites and builds). Returns a job_id at once; then call job_wait(job_id) in a loop.',
      input: z.strictObject({
        agent: inputs.submitInput.shape.agent.describe('exec, codex, claude, gemini, cursor, or a custom agent name.'),
        prompt: prompt.optional().describe('The task (every agent but exec).'),
        argv: inputs.argv.optional().describe('exec only: the command and its arguments.'),
        cwd,
        ...jobOptions,
      }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, jobs.submit(ctx.jobs, { ...submitOptions(args), agent: args.agent, prompt: args.prompt, argv: args.argv }), 'job_wait'),
    }),
    { ...agentWaitTool('job_wait', 'generic', 'any'), title: 'Wait for a job' },
    defineTool({
      name: 'job_await_any',
      group: 'generic',
      title: 'Wait for any of several jobs',
      description: 'Block until any of job_ids ends (default: every job started from this conversation or pending/running now), up to timeout_seconds. Answers the first ended job at the top level and any other ended ones in "completed"; pass the still-open ids (pending_job_ids) back in to wait for the rest. No completion is ever skipped. Status "timeout": none ended yet; "idle": nothing left to wait for.',
      input: described(inputs.awaitAnyInput, { job_ids: 'The jobs to wait for (default: see above).' }).extend({ timeout_seconds: waitSeconds, verbose }),
      output: awaitAnyOutput,
      annotations: WAIT_ANNOTATIONS,
      taskCapable: false,
      handler: (args, ctx) => awaitAnyTool(ctx, args.job_ids, args.timeout_seconds, 'job_await_any', args.verbose),
    }),
    defineTool({
      name: 'job_output',
      group: 'generic',
      title: "Read a job's output",
      description: "A page of the job's output (stdout and stderr) from byte offset (negative: that many bytes before the end). Answers next_offset: call again with it to read on, until eof. Pages are at most max_bytes (default 32768, at most 65536).",
      input: described(inputs.outputInput, {
        job_id: 'The job_id returned by a *_start tool.',
        offset: 'Byte offset to start at; negative counts from the end.',
        max_bytes: `Page size in bytes (1-${inputs.OUTPUT_PAGE_TOOL_MAX}).`,
      }),
      output: z.looseObject({ job_id: z.string(), offset: z.number(), next_offset: z.number(), size: z.number(), eof: z.boolean(), data: z.string(), job_status: z.string() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => ({ ...(await jobs.readOutputPage(ctx.jobs, args)) }),
    }),
    defineTool({
      name: 'job_continue',
      group: 'generic',
      title: "Continue a job's conversation",
      description: "Queue a new job that resumes the worker's own session of an ended job (same agent, same cwd) with a follow-up prompt; the worker remembers the earlier turn. An isolated job's worktree is made again from its branch, so the worker finds its own files and the new job's changes hold all the work since the first start. Returns a job_id at once; then call job_wait in a loop.",
      input: z.strictObject({ job_id: jobId, prompt, approval_policy: approvalPolicy, model, timeout_minutes: timeoutMinutes, ...placement }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: ({ timeout_minutes, ...args }, ctx) => started(ctx, jobs.continueJob(ctx.jobs, {
        ...args,
        timeout_seconds: timeout_minutes === undefined ? undefined : timeout_minutes * 60,
      }), 'job_wait'),
    }),
    defineTool({
      name: 'job_retry',
      group: 'generic',
      title: 'Run a job again',
      description: 'Queue a new job with the same request as an earlier one (same agent, prompt or command, cwd, options): for a flaky test run, or a job stopped by a limit. An exec job runs its command again. Returns a job_id at once; then call job_wait in a loop.',
      input: described(inputs.retryInput, { job_id: 'The job to run again.' }).extend(placement),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, jobs.retry(ctx.jobs, args), 'job_wait'),
    }),
    ...worktreeTools(),
  ];
}

/** The tools to expose: all, or those named (by tool name or group) in `selection`. */
export function selectTools(selection: string[] | null): ToolDefinition[] {
  const tools = allTools();
  if (!selection || selection.length === 0) return tools;
  const known = new Set<string>([...tools.map((t) => t.name), ...TOOL_GROUPS]);
  const unknown = selection.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new UserError('config_invalid', `mcp_tools: unknown ${unknown.map((n) => JSON.stringify(n)).join(', ')}; allowed: the groups ${TOOL_GROUPS.join(', ')} or tool names`, 'mcp_tools');
  }
  const wanted = new Set(selection);
  return tools.filter((tool) => wanted.has(tool.name) || wanted.has(tool.group));
}

