import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { POLICIES } from './config.js';
import { UserError, quoteInput } from './errors.js';
import { validateHostName, validateLabels } from './fleet/match.js';
import { JOB_ID_LENGTH, isJobId } from './spool/ids.js';
import { ISOLATIONS, JOB_STATUSES } from './spool/state.js';

/**
 * Every rule for input from outside, one schema per operation of `lib/jobs.ts`. The MCP server
 * registers these schemas (or a tool's view of one) with the SDK; the CLI maps its flags onto
 * them. Each message names what is allowed; `parseInput` puts the field in front. Rules that
 * need the configuration or the job (clamps, which agent takes a prompt) live in jobs.ts.
 */

/** How long a wait blocks unless told otherwise: under the ~60 s tool-call limit of common clients. */
export const WAIT_DEFAULT_SECONDS = 50;
export const LIST_DEFAULT = 20;
export const LIST_MAX = 1000;
export const OUTPUT_PAGE_DEFAULT = 32 * 1024;
export const OUTPUT_PAGE_TOOL_MAX = 64 * 1024;
export const SUMMARY_MAX_BYTES = 64 * 1024;
const MAX_ARGV_BYTES = 1024 * 1024;
const MAX_CONTEXT_FILES = 100;
const MODEL_PATTERN = /^[A-Za-z0-9][\w.:/@+[\]-]{0,199}$/;

export const PROMPT_REQUIRED = 'is required: a non-empty text saying what the agent should do';
export const ARGV_REQUIRED = 'is required: the command and its arguments, e.g. -- npm test';

type Check = z.core.$RefinementCtx;
const fail = (ctx: Check, message: string, at: PropertyKey[] = []): void => {
  ctx.addIssue({ code: 'custom', message, path: at });
};

// ── fields ────────────────────────────────────────────────────────────────────────────────

const JOB_ID_FORM = `${JOB_ID_LENGTH} lowercase letters and digits, as returned when the job was started`;

export const jobId = z.string().superRefine((value, ctx) => {
  if (value === '') fail(ctx, `is required: ${JOB_ID_FORM}`);
  else if (!isJobId(value)) fail(ctx, `${quoteInput(value)} is not a job id: expected ${JOB_ID_FORM}`);
});

/** An absolute path to an existing directory, normalized. */
export const cwd = z.string().superRefine((value, ctx) => {
  if (value.trim() === '') return fail(ctx, 'is required: an absolute path to an existing directory');
  if (value.includes('\0')) return fail(ctx, 'must not contain NUL characters');
  if (!path.isAbsolute(value)) return fail(ctx, `must be an absolute path to an existing directory; got the relative path ${quoteInput(value)}`);
  const stat = fs.statSync(value, { throwIfNoEntry: false });
  if (!stat) fail(ctx, `${quoteInput(value)} does not exist; expected an absolute path to an existing directory`);
  else if (!stat.isDirectory()) fail(ctx, `${quoteInput(value)} is a file, not a directory`);
}).transform((value) => path.normalize(value));

/** The task text of an agent job. */
export const prompt = z.string().superRefine((value, ctx) => {
  if (value.trim() === '') fail(ctx, PROMPT_REQUIRED);
  else if (value.includes('\0')) fail(ctx, 'must not contain NUL characters');
});

/** exec: the command and its arguments, run without a shell. */
export const argv = z.array(z.string()).superRefine((value, ctx) => {
  if (value.length === 0) return fail(ctx, ARGV_REQUIRED);
  value.forEach((arg, index) => {
    if (arg.includes('\0')) fail(ctx, 'must not contain NUL characters', [index]);
  });
  if (value[0]!.trim() === '') fail(ctx, 'the command must not be empty', [0]);
  const bytes = value.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
  if (bytes > MAX_ARGV_BYTES) fail(ctx, `is ${bytes} bytes; at most ${MAX_ARGV_BYTES} bytes are allowed (put large input in a file)`);
});

export const approvalPolicy = z.enum(POLICIES);

/** A model name for the worker CLI; '' means its default. */
export const model = z.string().refine((value) => value === '' || MODEL_PATTERN.test(value), {
  error: (issue) => `${quoteInput(issue.input)} is not a model name; expected letters, digits and . _ : / @ + - (up to 200, not starting with -)`,
});

/** Paths relative to cwd; whether each is inside cwd, a text file and small enough is read at submit. */
export const contextFiles = z.array(z.string().superRefine((value, ctx) => {
  if (value.trim() === '') fail(ctx, 'must be a non-empty file path');
  else if (value.includes('\0')) fail(ctx, 'must not contain NUL characters');
})).max(MAX_CONTEXT_FILES, { error: (issue) => `has ${(issue.input as unknown[]).length} entries; at most ${MAX_CONTEXT_FILES} are allowed` });

/** A job's own limit (its unit is the field's): above 0; above the configured maximum it is clamped. */
export const positiveLimit = z.number().positive({ error: (issue) => `must be above 0; got ${String(issue.input)}` });

/** How long a wait may block, in seconds; below 0 means look once, above the maximum is clamped. */
export const waitSeconds = z.number();

/** A whole number in a range; every way of missing it gets the same message. */
export function wholeNumber(min: number, max: number, said = `a whole number from ${min} to ${max}`) {
  const error = (issue: { input?: unknown }): string => `must be ${said}; got ${quoteInput(issue.input)}`;
  return z.number().int({ error }).min(min, { error }).max(max, { error });
}

/** none: the job runs in cwd; worktree: in its own git worktree, its work coming back as a branch. */
export const isolation = z.enum(ISOLATIONS, { error: (issue) => `${quoteInput(issue.input)} is not an isolation; allowed: ${ISOLATIONS.join(', ')}` });

/** isolation worktree: the committed ref to start from instead of the work tree as it is. */
export const base = z.string().superRefine((value, ctx) => {
  if (value.trim() === '') fail(ctx, 'must be a branch, tag or commit of the repository (e.g. "main", "HEAD~1"); omit it to start from the work tree as it is');
  else if (value.length > 1024 || /[\0\n\r]/.test(value) || value.startsWith('-')) fail(ctx, `${quoteInput(value)} is not a ref name; expected a branch, tag or commit (e.g. "main", "v1.2", "HEAD~1")`);
});

/** The rule's own message, without the field its thrower put in front. */
function ruleMessage(check: () => unknown): string | null {
  try {
    check();
    return null;
  } catch (error) {
    return (error as Error).message.replace(/^[^:]*: /, '');
  }
}

/** Fleet mode: the host a job must run on (a runner's host_name). */
export const host = z.string().superRefine((value, ctx) => {
  const problem = ruleMessage(() => validateHostName(value));
  if (problem) fail(ctx, problem);
});

/** Fleet mode: labels the host that runs the job must all have. */
export const labels = z.array(z.string()).superRefine((value, ctx) => {
  const problem = ruleMessage(() => validateLabels(value));
  if (problem) fail(ctx, problem);
});

/** Where a job may run (fleet mode only; jobs.ts refuses them when queue_url is not set). */
const placement = { host: host.optional(), labels: labels.optional() };

const text = (max: number) => z.string().max(max, { error: (issue) => `is ${(issue.input as string).length} characters; at most ${max} are allowed` });

// ── one schema per operation ──────────────────────────────────────────────────────────────

/** Submit a job: exec takes argv, every other agent a prompt (jobs.ts knows which is which). */
export const submitInput = z.strictObject({
  agent: z.string().min(1, { error: 'is required: exec, an agent name or a custom agent from config.json' }),
  argv: argv.optional(),
  prompt: prompt.optional(),
  cwd,
  approval_policy: approvalPolicy.optional(),
  model: model.optional(),
  context_files: contextFiles.optional(),
  timeout_seconds: positiveLimit.optional(),
  stall_seconds: positiveLimit.optional(),
  isolation: isolation.optional(),
  base: base.optional(),
  apply: z.boolean().optional(),
  ...placement,
});

/** A new job that resumes an ended job's worker session with a follow-up prompt. */
export const continueInput = z.strictObject({
  job_id: jobId,
  prompt,
  approval_policy: approvalPolicy.optional(),
  model: model.optional(),
  timeout_seconds: positiveLimit.optional(),
  ...placement,
});

/** Operations on one job: show, cancel. */
export const jobRef = z.strictObject({ job_id: jobId });

/** A new job with an earlier one's request, optionally placed elsewhere (fleet mode). */
export const retryInput = z.strictObject({ job_id: jobId, ...placement });

export const waitInput = z.strictObject({
  job_id: jobId,
  timeout_seconds: waitSeconds.optional().default(WAIT_DEFAULT_SECONDS),
});

export const awaitAnyInput = z.strictObject({
  job_ids: z.array(jobId).optional(),
  timeout_seconds: waitSeconds.optional().default(WAIT_DEFAULT_SECONDS),
});

export const listInput = z.strictObject({
  limit: wholeNumber(1, LIST_MAX).optional().default(LIST_DEFAULT),
  status: z.enum(JOB_STATUSES, { error: (issue) => `${quoteInput(issue.input)} is not a status; allowed: ${JOB_STATUSES.join(', ')}` }).optional(),
});

export const outputInput = z.strictObject({
  job_id: jobId,
  offset: z.number().int().optional().default(0),
  max_bytes: wholeNumber(1, OUTPUT_PAGE_TOOL_MAX, `from 1 to ${OUTPUT_PAGE_TOOL_MAX}`).optional().default(OUTPUT_PAGE_DEFAULT),
});

export const notifyInput = z.strictObject({
  job_id: jobId,
  summary: z.string().refine((value) => Buffer.byteLength(value) <= SUMMARY_MAX_BYTES, {
    error: (issue) => `is ${Buffer.byteLength(issue.input as string)} bytes; at most ${SUMMARY_MAX_BYTES} are allowed`,
  }).optional(),
});

export const gcInput = z.strictObject({
  older_than_seconds: z.number().min(0).optional(),
  keep: wholeNumber(0, Number.MAX_SAFE_INTEGER, 'a whole number, 0 or more').optional(),
  dry_run: z.boolean().optional().default(false),
  reindex: z.boolean().optional().default(false),
  branches: z.boolean().optional().default(false),
});

export const PATCH_PAGE_DEFAULT = 64 * 1024;
export const PATCH_PAGE_MAX = 1024 * 1024;

/** A page of an isolated job's changes.patch. */
export const diffInput = z.strictObject({
  job_id: jobId,
  offset: wholeNumber(0, Number.MAX_SAFE_INTEGER, 'a whole number of bytes from 0 (the next_offset of the previous page)').optional().default(0),
  max_bytes: wholeNumber(1, PATCH_PAGE_MAX, `from 1 to ${PATCH_PAGE_MAX}`).optional().default(PATCH_PAGE_DEFAULT),
});

export const queueInput = z.strictObject({});

/** The prompt templates' parameters (gemini_confluence_start, gemini_pr_start). */
export const confluenceInput = z.strictObject({
  title: text(300).min(1, { error: 'is required' }),
  space_key: text(100).optional(),
  parent_page: text(300).optional(),
  instructions: text(4000).optional(),
  publish: z.boolean().optional().default(false),
});

export const pullRequestInput = z.strictObject({
  pr_goal: text(4000).min(1, { error: 'is required' }),
  base_branch: text(200).optional(),
  title: text(300).optional(),
  draft: z.boolean().optional().default(true),
  publish: z.boolean().optional().default(false),
  instructions: text(4000).optional(),
});

// ── messages ──────────────────────────────────────────────────────────────────────────────

/** `job_ids[0]`, `argv[2]`, `context_files`: the field an issue is about. */
function fieldOf(at: readonly PropertyKey[], names: Record<string, string>): string {
  if (at.length === 0) return '(arguments)';
  const [head, ...rest] = at;
  const first = names[String(head)] ?? String(head);
  return first + rest.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('');
}

export interface Naming {
  /** The operation's name as the caller knows it (an MCP tool name), for "not a parameter of …". */
  operation?: string;
  /** The caller's names for fields (CLI flags), by schema field. */
  names?: Record<string, string>;
}

/** One issue as a sentence that starts with the field it is about. */
export function describeIssue(issue: z.core.$ZodIssue, naming: Naming = {}): string {
  const names = naming.names ?? {};
  const of = naming.operation ? ` of ${naming.operation}` : '';
  if (issue.code === 'unrecognized_keys') {
    return `${issue.keys.map((key) => names[key] ?? key).join(', ')}: not a parameter${of}`;
  }
  const field = fieldOf(issue.path, names);
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
    return `${field}: is required (${issue.expected})${naming.operation ? ` for ${naming.operation}` : ''}`;
  }
  return `${field}: ${issue.message}`;
}

/** Parses input from outside with an operation's schema; the first problem becomes a UserError naming the field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, naming: Naming = {}): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0];
  const name = field === undefined ? undefined : naming.names?.[String(field)] ?? String(field);
  throw new UserError('bad_input', parsed.error.issues.map((each) => describeIssue(each, naming)).join('; '), name);
}

/** Parses one value that is not part of an operation's input (e.g. a config setting), named `field`. */
export function parseField<S extends z.ZodType>(schema: S, value: unknown, field: string): z.output<S> {
  const parsed = parseInput(z.object({ value: schema }), { value }, { names: { value: field } }) as { value: z.output<S> };
  return parsed.value;
}
