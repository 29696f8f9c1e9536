import { UserError, quoteInput } from '../errors.js';
import { execAdapter } from './exec.js';
import type { AgentAdapter } from './types.js';

const adapters: ReadonlyMap<string, AgentAdapter> = new Map([[execAdapter.name, execAdapter]]);

export function agentNames(): string[] {
  return [...adapters.keys()];
}

export function getAdapter(name: string): AgentAdapter {
  const adapter = adapters.get(name);
  if (!adapter) {
    throw new UserError(
      'bad_input',
      `agent ${quoteInput(name)} is not known; allowed: ${agentNames().join(', ')}`,
      'agent',
    );
  }
  return adapter;
}
