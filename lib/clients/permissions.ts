import { UserError, quoteInput } from '../errors.js';

/**
 * Which of the server's tools a client may call without asking, by level. A level is chosen
 * on `add-agent` (`--allow-tools[=read|agents|none]`, `--allow-exec-tools`) and written into
 * the client's own mechanism: Claude Code's permissions.allow, Codex's per-tool
 * approval_mode, Gemini's trust (which covers every tool the server offers, so there the level
 * also limits which tools are offered).
 *
 * - read: the tools that only look (annotated readOnlyHint: waits, lists, status, output).
 * - agents: also those that start or steer agent workers (AGENT_TOOLS). Pre-approving them
 *   lets the model start a worker with any approval_policy, so this level also puts a ceiling
 *   on the policy (MAX_POLICY_ENV): full-auto, a worker without a sandbox, is refused.
 * - exec: every tool, agent_start and job_retry (exec runs any command) included, and no ceiling.
 *
 * A tool that is neither read-only nor listed here counts as exec: a new tool is never
 * pre-approved by accident.
 */

export const ALLOW_LEVELS = ['none', 'read', 'agents', 'exec'] as const;
export type AllowLevel = (typeof ALLOW_LEVELS)[number];

/**
 * Start or steer agent workers (within the policy ceiling), or bring an isolated worker's
 * finished work back or drop it; none of them runs a command of the caller's choosing.
 */
export const AGENT_TOOLS: readonly string[] = [
  'codex_start', 'claude_start', 'gemini_start', 'cursor_start', 'gemini_confluence_start', 'gemini_pr_start',
  'job_continue', 'job_cancel', 'agent_notify_done', 'job_apply', 'job_discard',
];

/** The variable (the `mcp_max_policy` config key) a registration sets to cap approval_policy. */
export const MAX_POLICY_ENV = 'AGENT_ASYNC_MCP_MAX_POLICY';
const AGENTS_MAX_POLICY = 'auto-edit';

export interface ToolInfo {
  name: string;
  readOnly: boolean;
}

function levelOf(tool: ToolInfo): Exclude<AllowLevel, 'none'> {
  if (tool.readOnly) return 'read';
  return AGENT_TOOLS.includes(tool.name) ? 'agents' : 'exec';
}

/** The names of the tools a level pre-approves, in the server's order. */
export function allowedTools(level: AllowLevel, tools: readonly ToolInfo[]): string[] {
  const rank = ALLOW_LEVELS.indexOf(level);
  return tools.filter((tool) => ALLOW_LEVELS.indexOf(levelOf(tool)) <= rank).map((tool) => tool.name);
}

/** The environment a registration at this level gives the server: the policy ceiling, when start tools are pre-approved without exec. */
export function levelEnv(level: AllowLevel): Record<string, string> {
  return level === 'agents' ? { [MAX_POLICY_ENV]: AGENTS_MAX_POLICY } : {};
}

/** The level asked for on the command line; `--allow-tools` alone means agents. */
export function parseLevel(allowTools: string | undefined, allowExecTools: boolean | undefined, fallback: AllowLevel): AllowLevel {
  if (allowExecTools) {
    if (allowTools !== undefined && allowTools !== '' && allowTools !== 'agents') {
      throw new UserError('bad_input', `allow-tools: ${quoteInput(allowTools)} contradicts --allow-exec-tools, which allows every tool; give one of them`, 'allow-tools');
    }
    return 'exec';
  }
  if (allowTools === undefined) return fallback;
  if (allowTools === '') return 'agents';
  const named = ['none', 'read', 'agents'];
  if (!named.includes(allowTools)) {
    const hint = allowTools === 'exec' || allowTools === 'all' ? ' (tools that run any command are allowed only with --allow-exec-tools)' : '';
    throw new UserError('bad_input', `allow-tools: ${quoteInput(allowTools)} is not a level; allowed: ${named.join(', ')}${hint}`, 'allow-tools');
  }
  return allowTools as AllowLevel;
}

/** One line saying what a level lets the client do without asking. */
export function describeLevel(level: AllowLevel, tools: readonly ToolInfo[]): string {
  const count = allowedTools(level, tools).length;
  switch (level) {
    case 'none':
      return 'no tool is pre-approved: the client asks before each call';
    case 'read':
      return `${count} read-only tools pre-approved (waits, lists, status, output); starting a job asks`;
    case 'agents':
      return `${count} tools pre-approved (read-only ones, and starting agent workers with approval_policy suggest or auto-edit; full-auto is refused); agent_start and job_retry (exec: any command) ask`;
    case 'exec':
      return `all ${count} tools pre-approved, agent_start and job_retry (exec: any command) and full-auto included`;
  }
}
