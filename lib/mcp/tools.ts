import { z } from 'zod';
import { confluencePrompt, pullRequestPrompt } from '../agents/templates.js';
import { POLICIES } from '../config.js';
import { UserError } from '../errors.js';
import * as jobs from '../jobs.js';
import { JOB_STATUSES, isTerminal } from '../spool/state.js';
import { listActive, readState } from '../spool/store.js';
import type { JobSnapshot } from '../jobs.js';
import { listItem, snapshotResult } from './results.js';

/**
 * The MCP tools: the 13 of the Python original (same names, parameters, defaults and result
 * keys) and the ones beyond it. Each has a zod input schema whose descriptions teach the
 * calling model the loop (start, then wait again while the answer is `timeout`), an output
 * schema, annotations, and a handler over `lib/jobs.ts`.
 */

export interface ToolContext {
  spool: jobs.Spool;
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
  input: z.ZodObject;
  output: z.ZodType;
  annotations: { readOnlyHint: boolean; destructiveHint: boolean; idempotentHint: boolean; openWorldHint: boolean };
  /** Start tools can also run as an MCP task (2025-11-25) for clients that ask. */
  taskCapable: boolean;
  /** Takes arguments already checked against `input`. */
  handler: (args: unknown, ctx: ToolContext) => Promise<Record<string, unknown>>;
}

type Answer = Record<string, unknown> | Promise<Record<string, unknown>>;

/** A tool whose handler sees its arguments typed by its own input schema. */
function defineTool<S extends z.ZodObject>(
  definition: Omit<ToolDefinition, 'input' | 'handler'> & { input: S; handler: (args: z.output<S>, ctx: ToolContext) => Answer },
): ToolDefinition {
  return { ...definition, handler: async (args, ctx) => definition.handler(args as z.output<S>, ctx) };
}

const WAIT_DEFAULT_SECONDS = 50;

// ── input pieces ──────────────────────────────────────────────────────────────────────────

const jobId = z.string().describe('The job_id returned by a *_start tool.');
const cwd = z.string().describe('Absolute path of the directory the agent works in (it must exist).');
const prompt = z.string().describe('The task for the agent, complete and self-contained: it sees nothing of your conversation.');
const approvalPolicy = z.enum(POLICIES).optional()
  .describe('suggest = read-only; auto-edit = may edit files inside cwd (the default, from config); full-auto = no sandbox and no prompts (use with care).');
const contextFiles = z.array(z.string()).optional()
  .describe('Files (relative to cwd, inside it) whose text is inlined into the prompt.');
const model = z.string().optional().describe("Model name for the agent CLI; omit to use the CLI's default.");
const timeoutMinutes = z.number().positive().optional().describe('Wall-clock limit of the job in minutes (default from config); the job is stopped when it is reached.');
const waitSeconds = z.number().optional().default(WAIT_DEFAULT_SECONDS)
  .describe('How long to block, in seconds (default 50, at most the configured maximum, 55 by default). If the job is not done by then the answer has status "timeout": call the wait tool again.');

/** The options every job-starting tool takes besides its task. */
const jobOptions = { approval_policy: approvalPolicy, context_files: contextFiles, model, timeout_minutes: timeoutMinutes };
const startShape = { prompt, cwd, ...jobOptions };

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
  notices: z.array(z.string()),
});

const resultShape = {
  job_id: z.string(),
  status: z.string().describe('"done", "error", "cancelled" when the job ended; "timeout" when the wait ended first'),
  job_status: z.string().optional().describe('the job\'s own status: pending, running, done, error, cancelled'),
  agent: z.string().optional(),
  cwd: z.string().optional(),
  prompt: z.string().nullable().optional(),
  exit_code: z.number().nullable().optional(),
  started_at: z.string().nullable().optional(),
  finished_at: z.string().nullable().optional(),
  duration_ms: z.number().nullable().optional(),
  final_message: z.string().nullable().optional(),
  session_id: z.string().nullable().optional(),
  summary: z.string().nullable().optional(),
  usage: usageSchema.optional(),
  token_usage: usageSchema.optional(),
  error: errorSchema.optional(),
  output: z.string().optional().describe('the last few KiB of the output; page through all of it with job_output'),
  message: z.string(),
};
const resultOutput = z.looseObject({ ...resultShape, notices: z.array(z.string()).optional() });
const awaitAnyOutput = z.looseObject({
  ...resultShape,
  status: z.string().describe('the first ended job\'s status ("done", "error", "cancelled"); "timeout" when none ended within the wait; "idle" when there is nothing to wait for'),
  job_id: z.string().nullable(),
  completed: z.array(z.looseObject(resultShape)).describe('every job that ended (oldest first); report each one'),
  pending_job_ids: z.array(z.string()).describe('jobs still pending or running'),
  notices: z.array(z.string()),
});

// ── helpers ───────────────────────────────────────────────────────────────────────────────

function minutesToSeconds(minutes: number | undefined): number | undefined {
  return minutes === undefined ? undefined : minutes * 60;
}

function startMessage(id: string, agent: string, waitTool: string): string {
  return `Job ${id} (${agent}) is queued and returns at once. Call ${waitTool} with job_id "${id}": it blocks up to 50 s; while it answers status "timeout", call it again. The job keeps running whatever happens to this conversation.`;
}

function started(ctx: ToolContext, result: jobs.SubmitResult, waitTool: string) {
  ctx.session.started.add(result.job_id);
  return {
    job_id: result.job_id,
    status: result.state.status,
    message: startMessage(result.job_id, result.state.request.agent, waitTool),
    agent: result.state.request.agent,
    cwd: result.state.request.cwd,
    notices: result.notices,
  };
}

function submitAgent(ctx: ToolContext, agent: string, args: Record<string, unknown>, extra: Partial<jobs.SubmitInput> = {}): jobs.SubmitResult {
  return jobs.submit(ctx.spool, {
    agent,
    prompt: args.prompt,
    argv: args.argv,
    cwd: args.cwd,
    policy: args.approval_policy,
    model: args.model,
    context_files: args.context_files,
    timeout_seconds: minutesToSeconds(args.timeout_minutes as number | undefined),
    ...extra,
  });
}

/** Runs a wait while sending progress (elapsed time, status, last output line) every few seconds. */
async function withProgress<T>(ctx: ToolContext, ids: string[], total: number, wait: () => Promise<T>): Promise<T> {
  const progress = ctx.progress;
  if (!progress) return wait();
  const started = Date.now();
  let last = 0;
  const timer = setInterval(() => {
    const first = ids[0] ? readState(ctx.spool.paths, ids[0]) : undefined;
    const status = first?.kind === 'ok' ? first.state.status : 'unknown';
    const tail = ids[0] ? jobs.readOutput(ctx.spool, ids[0], -400, 400).data.trimEnd().split('\n').at(-1) ?? '' : '';
    // progress must grow with every notification: elapsed seconds to a tenth, never repeated
    const elapsed = Math.max(Math.round((Date.now() - started) / 100) / 10, last + 0.1);
    last = elapsed;
    const what = ids.length === 1 ? `job ${ids[0]} ${status}` : `${ids.length} jobs`;
    void progress(elapsed, total, `${what}, ${Math.round(elapsed)} s${tail ? `: ${tail.slice(0, 200)}` : ''}`).catch(() => undefined);
  }, ctx.progressEveryMs);
  try {
    return await wait();
  } finally {
    clearInterval(timer);
  }
}

async function waitTool(ctx: ToolContext, args: { job_id: string; timeout_seconds: number }, toolName: string) {
  const answer = await withProgress(ctx, [args.job_id], args.timeout_seconds, () =>
    jobs.wait(ctx.spool, args.job_id, args.timeout_seconds, { signal: ctx.signal, defaultSeconds: WAIT_DEFAULT_SECONDS }));
  if (answer.snapshot.kind === 'ok' && isTerminal(answer.snapshot.state.status)) ctx.session.reported.add(answer.snapshot.id);
  return { ...snapshotResult(ctx.spool, answer.snapshot, toolName), notices: answer.notices };
}

async function awaitAnyTool(ctx: ToolContext, ids: string[] | undefined, timeoutSeconds: number, toolName: string) {
  let candidates = ids;
  if (!candidates || candidates.length === 0) {
    // Lossless between calls: everything this server started, plus every job seen active at
    // any call, stays a candidate until it has been reported once.
    for (const id of listActive(ctx.spool.paths)) ctx.session.started.add(id);
    candidates = [...ctx.session.started].filter((id) => !ctx.session.reported.has(id));
  }
  // Everything was reported: idle, even if a job just reported still has its active/ marker
  // (it goes a moment after the terminal write), which awaitAny without ids would wait on.
  const waitOn = candidates;
  const answer = waitOn.length === 0
    ? { finished: [], open: [], notices: [jobs.NOTHING_TO_AWAIT] }
    : await withProgress(ctx, waitOn, timeoutSeconds, () =>
      jobs.awaitAny(ctx.spool, waitOn, timeoutSeconds, { signal: ctx.signal, defaultSeconds: WAIT_DEFAULT_SECONDS }));
  const completed = answer.finished.map((snap: JobSnapshot) => snapshotResult(ctx.spool, snap, toolName));
  for (const snap of answer.finished) ctx.session.reported.add(snap.id);
  const pending = answer.open.map((snap) => snap.id);
  const first = completed[0];
  if (first) {
    const more = completed.length > 1 ? ` ${completed.length} jobs ended; all are in "completed".` : '';
    return { ...first, message: `${first.message}${more}`, completed, pending_job_ids: pending, notices: answer.notices };
  }
  const message = pending.length === 0
    ? 'No job to wait for: none is pending or running.'
    : `No job ended within the wait; ${pending.length} still pending or running. Call ${toolName} again.`;
  return { job_id: null, status: pending.length === 0 ? 'idle' : 'timeout', completed, pending_job_ids: pending, notices: answer.notices, message };
}

// ── the tools ─────────────────────────────────────────────────────────────────────────────

const START_ANNOTATIONS = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
const WAIT_ANNOTATIONS = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

function agentStartTool(name: string, agent: string, group: ToolGroup, label: string, waitName: string): ToolDefinition {
  return defineTool({
    name,
    group,
    title: `Start a job for ${label}`,
    description: `Queue a task for ${label} and return a job_id at once (never blocks). Then call ${waitName}(job_id) in a loop: each call blocks up to 50 s and answers status "timeout" while the job runs. Jobs run one after another (or as configured) and survive restarts.`,
    input: z.object(startShape),
    output: startOutput,
    annotations: START_ANNOTATIONS,
    taskCapable: true,
    handler: (args, ctx) => started(ctx, submitAgent(ctx, agent, args), waitName),
  });
}

function agentWaitTool(name: string, group: ToolGroup, label: string): ToolDefinition {
  return defineTool({
    name,
    group,
    title: `Wait for a ${label} job`,
    description: `Block until the job ends or timeout_seconds pass (default 50, below the usual 60 s tool-call limit). Answers the result (status done/error/cancelled, final_message, exit_code, output tail, token_usage) or status "timeout" with the job's current status: then call ${name} again. Works for any job_id, whatever agent runs it.`,
    input: z.object({ job_id: jobId, timeout_seconds: waitSeconds }),
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
      description: 'Block until any job started from this conversation (or pending/running when you call) ends, up to timeout_seconds (default 50). Answers the first ended job at the top level and every ended job in "completed"; a job that ended between two calls is still reported. Status "timeout" means none ended yet: call again.',
      input: z.object({ timeout_seconds: waitSeconds }),
      output: awaitAnyOutput,
      annotations: WAIT_ANNOTATIONS,
      taskCapable: false,
      handler: (args, ctx) => awaitAnyTool(ctx, undefined, args.timeout_seconds, 'codex_await_any'),
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
      input: z.object({
        title: z.string().describe('Title of the page.'),
        cwd,
        space_key: z.string().optional().describe('Confluence space key, for publishing.'),
        parent_page: z.string().optional().describe('Parent page title or id, for publishing.'),
        instructions: z.string().optional().describe('What the page should cover, and how.'),
        publish: z.boolean().optional().default(false).describe('Publish the page (default: only draft it).'),
        ...jobOptions,
      }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, submitAgent(ctx, 'gemini', { ...args, prompt: confluencePrompt(args) }, { template: 'confluence' }), 'gemini_wait'),
    }),
    defineTool({
      name: 'gemini_pr_start',
      group: 'gemini',
      title: 'Prepare (and optionally open) a pull request with Gemini',
      description: 'Queue a Gemini job that makes the change pr_goal describes on a new branch in the git repository at cwd, commits it and writes pr-description.md; it pushes and opens the pull request only when publish is true. Returns a job_id at once; then call gemini_wait in a loop.',
      input: z.object({
        cwd,
        pr_goal: z.string().describe('What the pull request should achieve.'),
        base_branch: z.string().optional().describe('Branch to start from and target (default: the current one).'),
        title: z.string().optional().describe('Title of the pull request.'),
        draft: z.boolean().optional().default(true).describe('Open it as a draft (default true).'),
        publish: z.boolean().optional().default(false).describe('Push and open the pull request (default: only prepare it locally).'),
        instructions: z.string().optional().describe('Further guidance.'),
        ...jobOptions,
      }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, submitAgent(ctx, 'gemini', { ...args, prompt: pullRequestPrompt(args) }, { template: 'pr' }), 'gemini_wait'),
    }),
    defineTool({
      name: 'job_list',
      group: 'queue',
      title: 'List jobs',
      description: 'The newest jobs of every agent, newest first, with status, agent, cwd and a prompt preview.',
      input: z.object({
        limit: z.number().int().optional().default(20).describe(`How many (1-${jobs.LIST_MAX}, default 20).`),
        status: z.enum(JOB_STATUSES).optional().describe('Only jobs with this status.'),
      }),
      output: z.looseObject({ jobs: z.array(z.looseObject({ job_id: z.string(), status: z.string() })), count: z.number() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: (args, ctx) => {
        const snaps = jobs.list(ctx.spool, { limit: args.limit, status: args.status });
        return { jobs: snaps.map((snap) => listItem(ctx.spool, snap)), count: snaps.length };
      },
    }),
    defineTool({
      name: 'job_cancel',
      group: 'queue',
      title: 'Cancel a job',
      description: 'Cancel a job: a pending one never starts; a running one is stopped with its whole process tree (TERM, a grace period, KILL). Its partial output is kept. Cancelling a job that already ended changes nothing.',
      input: z.object({ job_id: jobId }),
      output: z.looseObject({ job_id: z.string(), status: z.string(), cancelled: z.boolean(), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const answer = await jobs.cancel(ctx.spool, args.job_id);
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
      description: 'Whether a job is running, how many wait, and the health of the runner that runs them.',
      input: z.object({}),
      output: z.looseObject({ busy: z.boolean(), running_job_id: z.string().nullable(), pending_count: z.number() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: (_args, ctx) => {
        const queue = jobs.queueSummary(ctx.spool.paths);
        const running = queue.running.map((state) => state.id);
        return {
          busy: running.length > 0,
          running_job_id: running[0] ?? null,
          running_job_ids: running,
          running_count: running.length,
          pending_count: queue.pending.length,
          concurrency: ctx.spool.config.concurrency,
          runner: queue.runner,
        };
      },
    }),
    defineTool({
      name: 'agent_notify_done',
      group: 'queue',
      title: 'Report a job done',
      description: 'Called BY a worker agent when its job is finished (its job id is in its prompt and in $AGENT_ASYNC_JOB_ID). Marks the job done with the summary; waiters in every process wake at once. A worker still running after a short grace period is stopped.',
      input: z.object({ job_id: jobId, summary: z.string().optional().describe('One line saying what was done.') }),
      output: z.looseObject({ ok: z.boolean(), job_id: z.string(), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      taskCapable: false,
      handler: (args, ctx) => {
        const answer = jobs.notifyDone(ctx.spool, args.job_id, args.summary);
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
      input: z.object({
        agent: z.string().describe('exec, codex, claude, gemini, cursor, or a custom agent name.'),
        prompt: prompt.optional().describe('The task (every agent but exec).'),
        argv: z.array(z.string()).optional().describe('exec only: the command and its arguments.'),
        cwd,
        approval_policy: approvalPolicy,
        context_files: contextFiles,
        model,
        timeout_minutes: timeoutMinutes,
      }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, submitAgent(ctx, args.agent, args), 'job_wait'),
    }),
    { ...agentWaitTool('job_wait', 'generic', 'any'), title: 'Wait for a job' },
    defineTool({
      name: 'job_await_any',
      group: 'generic',
      title: 'Wait for any of several jobs',
      description: 'Block until any of job_ids ends (default: every job started from this conversation or pending/running now), up to timeout_seconds. Answers every job that has ended, in "completed"; pass the still-open ids (pending_job_ids) back in to wait for the rest. No completion is ever skipped.',
      input: z.object({
        job_ids: z.array(z.string()).optional().describe('The jobs to wait for (default: see above).'),
        timeout_seconds: waitSeconds,
      }),
      output: awaitAnyOutput,
      annotations: WAIT_ANNOTATIONS,
      taskCapable: false,
      handler: (args, ctx) => awaitAnyTool(ctx, args.job_ids, args.timeout_seconds, 'job_await_any'),
    }),
    defineTool({
      name: 'job_output',
      group: 'generic',
      title: "Read a job's output",
      description: "A page of the job's output (stdout and stderr) from byte offset (negative: that many bytes before the end). Answers next_offset: call again with it to read on, until eof. Pages are at most max_bytes (default 32768, at most 65536).",
      input: z.object({
        job_id: jobId,
        offset: z.number().int().optional().default(0).describe('Byte offset to start at; negative counts from the end.'),
        max_bytes: z.number().int().optional().default(32 * 1024).describe('Page size in bytes (1-65536).'),
      }),
      output: z.looseObject({ job_id: z.string(), offset: z.number(), next_offset: z.number(), size: z.number(), eof: z.boolean(), data: z.string(), job_status: z.string() }),
      annotations: { ...WAIT_ANNOTATIONS, openWorldHint: false },
      taskCapable: false,
      handler: (args, ctx) => {
        if (args.max_bytes < 1 || args.max_bytes > 64 * 1024) {
          throw new UserError('bad_input', `max_bytes: must be from 1 to 65536; got ${args.max_bytes}`, 'max_bytes');
        }
        const snap = jobs.getJob(ctx.spool, args.job_id);
        const page = jobs.readOutput(ctx.spool, snap.id, args.offset, args.max_bytes);
        return { ...page, job_status: snap.kind === 'ok' ? snap.state.status : 'unreadable' };
      },
    }),
    defineTool({
      name: 'job_continue',
      group: 'generic',
      title: "Continue a job's conversation",
      description: "Queue a new job that resumes the worker's own session of an ended job (same agent, same cwd) with a follow-up prompt; the worker remembers the earlier turn. Returns a job_id at once; then call job_wait in a loop.",
      input: z.object({ job_id: jobId, prompt, approval_policy: approvalPolicy, model, timeout_minutes: timeoutMinutes }),
      output: startOutput,
      annotations: START_ANNOTATIONS,
      taskCapable: true,
      handler: (args, ctx) => started(ctx, jobs.continueJob(ctx.spool, args.job_id, {
        prompt: args.prompt,
        policy: args.approval_policy,
        model: args.model,
        timeout_seconds: minutesToSeconds(args.timeout_minutes),
      }), 'job_wait'),
    }),
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

