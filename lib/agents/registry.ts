import { BUILTIN_AGENTS, builtinAgentConfig, customAgentConfig, type Config } from '../config.js';
import { UserError, quoteInput } from '../errors.js';
import { claudeAdapter } from './claude.js';
import { codexAdapter } from './codex.js';
import { cursorAdapter } from './cursor.js';
import { customAdapter } from './custom.js';
import { execAdapter } from './exec.js';
import { geminiAdapter } from './gemini.js';
import type { AgentAdapter } from './types.js';

const BUILTIN_FACTORIES = {
  codex: codexAdapter,
  claude: claudeAdapter,
  gemini: geminiAdapter,
  cursor: cursorAdapter,
} as const;

/** Every agent a job may name: exec, the four built-in CLIs, and the custom ones in config. */
export function agentNames(config: Config): string[] {
  const custom = Object.keys(config.agents).filter((name) => !(BUILTIN_AGENTS as readonly string[]).includes(name));
  return ['exec', ...BUILTIN_AGENTS, ...custom.sort()];
}

export function getAdapter(name: string, config: Config): AgentAdapter {
  if (name === 'exec') return execAdapter;
  if (Object.hasOwn(BUILTIN_FACTORIES, name)) return BUILTIN_FACTORIES[name as keyof typeof BUILTIN_FACTORIES](builtinAgentConfig(config, name));
  const custom = customAgentConfig(config, name);
  if (custom) return customAdapter(name, custom);
  throw new UserError('bad_input', `agent ${quoteInput(name)} is not known; allowed: ${agentNames(config).join(', ')}`, 'agent');
}
