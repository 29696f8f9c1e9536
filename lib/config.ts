import fs from 'node:fs';
import { z } from 'zod';
import { UserError } from './errors.js';
import { validateHostName, validateLabels } from './fleet/match.js';
import { readJsonFile } from './spool/fsx.js';
import type { SpoolPaths } from './spool/layout.js';
import { ISOLATIONS } from './spool/state.js';
import { checkRemoteName } from './worktree/remote.js';

/**
 * `config.json` in the spool root, every key optional. Environment variables override it
 * (`AGENT_ASYNC_<KEY in upper case>`, e.g. `AGENT_ASYNC_CONCURRENCY=4`), and CLI flags or tool
 * arguments override both for one job.
 */
export const POLICIES = ['suggest', 'auto-edit', 'full-auto'] as const;
export type Policy = (typeof POLICIES)[number];
export const BUILTIN_AGENTS = ['codex', 'claude', 'gemini', 'cursor'] as const;

/** Settings of a built-in agent CLI (codex, claude, gemini, cursor). */
export const builtinAgentConfigSchema = z.strictObject({
  binary: z.string().min(1).optional().describe('path or name of the CLI (default: its usual name on PATH)'),
  extra_args: z.array(z.string()).default([]).describe('added to every invocation, before the prompt'),
  env: z.record(z.string(), z.string()).default({}).describe('added to the worker environment'),
});
export type BuiltinAgentConfig = z.infer<typeof builtinAgentConfigSchema>;

/** Where a value sits in a JSON line of a custom agent's output: "a.b.c", optionally only in lines matching `where`. */
export const jsonSelectorSchema = z.union([
  z.string().min(1),
  z.strictObject({ path: z.string().min(1), where: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional() }),
]);
export type JsonSelector = z.infer<typeof jsonSelectorSchema>;

/** A CLI declared by the user: argv template, prompt delivery and output format. */
export const customAgentConfigSchema = z.strictObject({
  command: z.array(z.string()).min(1).describe('argv template; {prompt}, {cwd} and {model} are replaced'),
  description: z.string().optional(),
  prompt_via: z.enum(['argv', 'stdin']).default('argv'),
  output: z.enum(['text', 'jsonl']).default('text'),
  jsonl: z.strictObject({
    final_message: jsonSelectorSchema.optional(),
    session_id: jsonSelectorSchema.optional(),
    input_tokens: jsonSelectorSchema.optional(),
    output_tokens: jsonSelectorSchema.optional(),
    cached_input_tokens: jsonSelectorSchema.optional(),
    cost_usd: jsonSelectorSchema.optional(),
    error: jsonSelectorSchema.optional().describe('a line where this is present reports a failure'),
  }).default({}),
  policy_args: z.partialRecord(z.enum(POLICIES), z.array(z.string())).default({}).describe('extra args per policy'),
  resume_args: z.array(z.string()).optional().describe('args to continue a session; {session_id} is replaced'),
  env: z.record(z.string(), z.string()).default({}),
  install_hint: z.string().optional(),
}).superRefine((agent, ctx) => {
  if (/\{(prompt|cwd|model)\}/.test(agent.command[0]!)) {
    ctx.addIssue({ code: 'custom', path: ['command', 0], message: 'must be the program (a name or a path), not a {placeholder}' });
  }
  if (agent.prompt_via === 'argv' && !agent.command.some((arg) => arg.includes('{prompt}'))) {
    ctx.addIssue({ code: 'custom', path: ['command'], message: 'has no {prompt}, so the prompt would reach the CLI nowhere: add "{prompt}" where it goes, or set "prompt_via": "stdin"' });
  }
});
export type CustomAgentConfig = z.infer<typeof customAgentConfigSchema>;

/** Settings of isolation "worktree" (docs/WORKTREES.md). */
export const worktreeConfigSchema = z.strictObject({
  setup: z.array(z.string().min(1)).min(1).nullable().default(null)
    .describe('argv run without a shell in each new worktree before the worker, e.g. ["npm", "ci"]; its failure ends the job setup_failed'),
  setup_timeout_seconds: z.number().positive().max(86_400).default(1800)
    .describe('longest time worktree.setup may take'),
  copy: z.array(z.union([z.string().min(1), z.strictObject({ path: z.string().min(1), mode: z.enum(['copy', 'link']).default('copy') })])).default([])
    .describe('ignored paths copied (or linked, mode "link") from the work tree into each worktree: .env, node_modules, …; never committed'),
  submodules: z.enum(['refuse', 'empty']).default('refuse')
    .describe('a work tree with submodules: refuse (the default) or accept them as empty folders in the worktree'),
});
export type WorktreeConfig = z.infer<typeof worktreeConfigSchema>;

/** user:password@ in the authority, or a password= parameter: never accepted in config. */
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^@/?#]*:[^@/?#]*@|[?&]password=/i;

export const configSchema = z.object({
  concurrency: z.number().int().min(1).max(64).default(4)
    .describe('jobs that may run at once'),
  warm_supervisors: z.number().int().min(0).max(64).nullable().default(null)
    .describe('supervisors kept started and idle while the runner has work, so jobs submitted together start at once (each is a Node process of ~50 MB); null = concurrency'),
  exclusive_cwd: z.boolean().default(true)
    .describe('never run two jobs without isolation in the same git work tree (or, outside git, the same cwd) side by side'),
  isolation: z.enum(ISOLATIONS).default('none')
    .describe('isolation of jobs that do not name one: none (the job runs in cwd) or worktree (its own git worktree)'),
  worktree: worktreeConfigSchema.default(worktreeConfigSchema.parse({}))
    .describe('isolation "worktree": what each new worktree gets before the worker starts'),
  runner_idle_seconds: z.number().min(1).max(86_400).default(60)
    .describe('the runner exits after this long with no pending or running job'),
  job_timeout_seconds: z.number().positive().max(7 * 86_400).default(3 * 3600)
    .describe('default wall-clock limit of a job'),
  max_job_timeout_seconds: z.number().positive().max(30 * 86_400).default(7 * 86_400)
    .describe('largest wall-clock limit a job may ask for; larger requests are clamped'),
  stall_timeout_seconds: z.number().positive().nullable().default(null)
    .describe('end a job that writes no output for this long; null = never'),
  kill_grace_seconds: z.number().min(0).max(600).default(5)
    .describe('time between TERM and KILL when a job is stopped'),
  done_grace_seconds: z.number().min(0).max(3600).default(10)
    .describe('time a worker may keep running after it reported done'),
  wait_max_seconds: z.number().min(1).max(3600).default(55)
    .describe('longest single wait call; larger requests are clamped'),
  poll_seconds: z.number().min(0.05).max(60).default(1)
    .describe('safety re-read interval of waits and of the runner'),
  watch_mode: z.enum(['native', 'chokidar', 'poll']).default('native')
    .describe('how waits notice changes: native fs.watch, chokidar, or poll only (network filesystems)'),
  tmp_max_age_seconds: z.number().min(60).default(3600)
    .describe('temp files older than this are swept'),
  default_policy: z.enum(POLICIES).default('auto-edit')
    .describe('approval policy of agent jobs that do not name one'),
  prompt_stdin_bytes: z.number().int().min(1024).max(120 * 1024).default(100 * 1024)
    .describe('prompts larger than this go to the worker through stdin instead of argv'),
  context_file_max_bytes: z.number().int().min(1).default(256 * 1024)
    .describe('largest context file that may be inlined'),
  context_total_max_bytes: z.number().int().min(1).default(1024 * 1024)
    .describe('largest total of inlined context files'),
  agents: z.record(z.string(), z.unknown()).default({})
    .describe('per-agent settings (codex, claude, gemini, cursor) and custom agents'),
  retention_days: z.number().min(0).nullable().default(7)
    .describe('the runner removes finished jobs older than this; null = keep them'),
  retention_max_jobs: z.number().int().min(0).nullable().default(10_000)
    .describe('the runner keeps at most this many finished jobs; null = no limit'),
  mcp_tools: z.array(z.string()).nullable().default(null)
    .describe('MCP tools to expose, by name or group (codex, claude, gemini, cursor, generic, queue); null = all'),
  mcp_max_policy: z.enum(POLICIES).nullable().default(null)
    .describe('highest approval_policy an MCP call may ask for (add-agent sets auto-edit where it pre-approves the start tools); null = any'),
  progress_seconds: z.number().min(0.1).max(60).default(5)
    .describe('interval of MCP progress notifications during waits'),
  queue_url: z.string().min(1).nullable().default(null)
    .refine((url) => url === null || !URL_WITH_PASSWORD.test(url), {
      message: 'must not contain the password (it would show in `agent-async config` and in process environments); put it in ~/.pgpass or the file PGPASSFILE names',
    })
    .describe('fleet mode: PostgreSQL URL of the queue shared by many hosts, e.g. postgres://agent-async@db.internal/agent_async (docs/FLEET.md); null = this machine only'),
  host_name: z.string().nullable().default(null)
    .refine((name) => name === null || accepts(() => validateHostName(name)), {
      message: "is not a host name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    })
    .describe('fleet mode: the name this host has in the queue (jobs pin to it with host); null = os.hostname()'),
  labels: z.array(z.string()).default([])
    .refine((labels) => accepts(() => validateLabels(labels)), {
      message: "each label is 1-63 lowercase letters, digits, '.', '_', ':', '=' or '-'",
    })
    .describe('fleet mode: labels this host\'s runner offers (a job that names labels runs only on a host that has them all)'),
  fleet_remote: z.string().default('origin')
    .refine((name) => name === '' || accepts(() => checkRemoteName(name, 'fleet_remote')), {
      message: 'is not a git remote name: the name of a remote of the repository, such as "origin" (or "" to run isolated jobs on the submitting host only)',
    })
    .describe('fleet mode: the remote of a repository an isolated job\'s snapshot is pushed to (refs/agent-async/<id>/), so that any host can run it; "" = never push, isolated jobs run on the submitting host'),
  lease_seconds: z.number().min(0.2).max(600).default(15)
    .describe('fleet mode: the runner\'s lease in the queue; a runner silent for this long loses its jobs (runner_lost)'),
});

function accepts(check: () => unknown): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}
export type Config = z.infer<typeof configSchema>;

const NUMERIC_KEYS = new Set(
  Object.entries(configSchema.shape)
    .filter(([, schema]) => {
      const inner = schema.def.innerType;
      return inner instanceof z.ZodNumber || (inner instanceof z.ZodNullable && inner.def.innerType instanceof z.ZodNumber);
    })
    .map(([key]) => key),
);

/** The variable that sets a config key (agents has none). */
export function configEnvName(key: string): string {
  return `AGENT_ASYNC_${key.toUpperCase()}`;
}

function fromEnvironment(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape)) {
    // AGENT_ASYNC_WORKTREE is the worktree path a worker is given, not this setting
    if (key === 'agents' || key === 'worktree') continue;
    const raw = env[configEnvName(key)];
    if (raw === undefined || raw === '') continue;
    if (key === 'mcp_tools' || key === 'labels') {
      values[key] = raw.split(',').map((part) => part.trim()).filter(Boolean);
      continue;
    }
    if (NUMERIC_KEYS.has(key)) values[key] = raw === 'null' ? null : Number(raw);
    else if (raw === 'true' || raw === 'false') values[key] = raw === 'true';
    else values[key] = raw;
  }
  return values;
}

function describeIssue(issue: z.core.$ZodIssue, source: string): string {
  const field = issue.path.join('.') || '(root)';
  return `${source}: ${field}: ${issue.message}`;
}

export function loadConfig(paths: SpoolPaths, env: NodeJS.ProcessEnv = process.env): Config {
  const file = readJsonFile<Record<string, unknown>>(paths.config);
  if (file.kind === 'corrupt') {
    throw new UserError('config_invalid', `${paths.config}: ${file.reason}`, 'config.json');
  }
  const fromFile = file.kind === 'ok' ? file.value : {};
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
    throw new UserError('config_invalid', `${paths.config}: must be a JSON object`, 'config.json');
  }
  const unknown = Object.keys(fromFile).filter((key) => !Object.hasOwn(configSchema.shape, key));
  if (unknown.length > 0) {
    throw new UserError(
      'config_invalid',
      `${paths.config}: unknown key ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${Object.keys(configSchema.shape).join(', ')}`,
      'config.json',
    );
  }
  const fileCheck = configSchema.safeParse(fromFile);
  if (!fileCheck.success) {
    throw new UserError('config_invalid', describeIssue(fileCheck.error.issues[0]!, paths.config), 'config.json');
  }
  const merged = configSchema.safeParse({ ...fromFile, ...fromEnvironment(env) });
  if (!merged.success) {
    throw new UserError('config_invalid', describeIssue(merged.error.issues[0]!, 'environment (AGENT_ASYNC_*)'), 'env');
  }
  checkAgents(merged.data.agents, paths.config);
  return merged.data;
}

export type ConfigOrigin = 'default' | 'config.json' | 'environment';

/** Where each key's effective value comes from: the environment over config.json over the default. */
export function configOrigins(paths: SpoolPaths, env: NodeJS.ProcessEnv = process.env): Record<keyof Config, ConfigOrigin> {
  const file = readJsonFile<Record<string, unknown>>(paths.config);
  const fromFile = file.kind === 'ok' && typeof file.value === 'object' && file.value !== null ? file.value : {};
  const fromEnv = fromEnvironment(env);
  const origins = Object.keys(configSchema.shape).map((key) => {
    const origin: ConfigOrigin = Object.hasOwn(fromEnv, key) ? 'environment' : Object.hasOwn(fromFile, key) ? 'config.json' : 'default';
    return [key, origin];
  });
  return Object.fromEntries(origins) as Record<keyof Config, ConfigOrigin>;
}

/** mtime and size of config.json, to notice an edit with one stat. */
export function configStamp(paths: SpoolPaths): string {
  try {
    const stat = fs.statSync(paths.config);
    return `${stat.mtimeMs}:${stat.size}`;
  } catch {
    return 'none';
  }
}

/**
 * For long-lived processes (the MCP server, the runner): `current()` returns the config,
 * re-read when config.json changed. A broken edit throws from `current()` each time it is
 * asked for until fixed; the last good config stays in `lastGood`.
 */
export class ConfigSource {
  private stamp: string;
  lastGood: Config;

  constructor(
    private readonly paths: SpoolPaths,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.stamp = configStamp(paths);
    this.lastGood = loadConfig(paths, env);
  }

  current(): Config {
    const stamp = configStamp(this.paths);
    if (stamp !== this.stamp) {
      this.lastGood = loadConfig(this.paths, this.env);
      this.stamp = stamp;
    }
    return this.lastGood;
  }
}

const AGENT_NAME = /^[a-z][a-z0-9_-]{0,39}$/;

function checkAgents(agents: Record<string, unknown>, file: string): void {
  for (const [name, value] of Object.entries(agents)) {
    if (!AGENT_NAME.test(name)) {
      throw new UserError('config_invalid', `${file}: agents.${name}: an agent name is 1-40 lowercase letters, digits, - or _, starting with a letter`, 'config.json');
    }
    const builtin = (BUILTIN_AGENTS as readonly string[]).includes(name);
    if (name === 'exec') throw new UserError('config_invalid', `${file}: agents.exec: exec is built in and takes no settings`, 'config.json');
    const schema = builtin ? builtinAgentConfigSchema : customAgentConfigSchema;
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new UserError('config_invalid', describeIssue({ ...issue, path: ['agents', name, ...issue.path] }, file), 'config.json');
    }
  }
}

export function builtinAgentConfig(config: Config, name: string): BuiltinAgentConfig {
  return builtinAgentConfigSchema.parse(config.agents[name] ?? {});
}

export function customAgentConfig(config: Config, name: string): CustomAgentConfig | undefined {
  if ((BUILTIN_AGENTS as readonly string[]).includes(name) || !Object.hasOwn(config.agents, name)) return undefined;
  return customAgentConfigSchema.parse(config.agents[name]);
}
