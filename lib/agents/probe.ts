import { spawnSync } from 'node:child_process';
import type { Config } from '../config.js';
import { resolveExecutable } from '../which.js';
import { agentNames, getAdapter } from './registry.js';

/** What `list-agents` shows of each worker: its binary, whether it is installed, its version. */
export interface AgentProbe {
  agent: string;
  description: string;
  binary: string;
  installed: boolean;
  path: string | null;
  version: string | null;
  install_hint: string | null;
  /** How to log in: the command, and the variable that takes an API key. */
  login_hint: string | null;
}

function versionOf(file: string): string | null {
  const result = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error || result.status !== 0) return null;
  const line = `${result.stdout}${result.stderr}`.split('\n').map((l) => l.trim()).find((l) => l !== '');
  return line ?? null;
}

export function probeAgents(config: Config, searchPath: string = process.env.PATH ?? ''): AgentProbe[] {
  return agentNames(config).map((name) => {
    const adapter = getAdapter(name, config);
    if (name === 'exec') {
      return { agent: name, description: adapter.description, binary: '-', installed: true, path: null, version: null, install_hint: null, login_hint: null };
    }
    const found = resolveExecutable(adapter.binary, process.cwd(), searchPath);
    return {
      agent: name,
      description: adapter.description,
      binary: adapter.binary,
      installed: found.ok,
      path: found.ok ? found.file : null,
      version: found.ok ? versionOf(found.file) : null,
      install_hint: found.ok ? null : adapter.installHint,
      login_hint: adapter.loginHint ?? null,
    };
  });
}
