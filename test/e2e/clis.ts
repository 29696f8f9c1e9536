import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/spool.js';

/**
 * The real agent CLIs, at pinned versions, installed by the tests into an ignored cache
 * folder (never runtime dependencies of agent-async).
 */
export const PINNED = {
  codex: { pkg: '@openai/codex', version: '0.169.0' },
  claude: { pkg: '@anthropic-ai/claude-code', version: '2.1.197' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0' },
} as const;

export const CLI_CACHE = path.join(ROOT, '.cache', 'agent-clis');

function installedVersion(pkg: string): string | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(CLI_CACHE, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** Installs the pinned CLIs when missing; returns the folder holding their binaries. */
export function ensureAgentClis(): string {
  const missing = Object.values(PINNED).filter(({ pkg, version }) => installedVersion(pkg) !== version);
  if (missing.length > 0) {
    fs.mkdirSync(CLI_CACHE, { recursive: true });
    if (!fs.existsSync(path.join(CLI_CACHE, 'package.json'))) {
      fs.writeFileSync(path.join(CLI_CACHE, 'package.json'), '{ "name": "agent-clis-for-tests", "private": true }\n');
    }
    execFileSync('npm', ['install', '--no-audit', '--no-fund', ...Object.values(PINNED).map(({ pkg, version }) => `${pkg}@${version}`)], {
      cwd: CLI_CACHE,
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 15 * 60_000,
    });
  }
  const bin = path.join(CLI_CACHE, 'node_modules', '.bin');
  for (const name of ['codex', 'claude', 'gemini']) {
    if (!fs.existsSync(path.join(bin, name))) throw new Error(`the ${name} CLI is missing from ${bin} after npm install`);
  }
  return bin;
}

export const INSPECTOR = { pkg: '@modelcontextprotocol/inspector', version: '1.0.3' } as const;
const INSPECTOR_CACHE = path.join(ROOT, '.cache', 'inspector');

/** The MCP Inspector's CLI (a client nobody here wrote), installed like the agent CLIs. */
export function ensureInspector(): string {
  const bin = path.join(INSPECTOR_CACHE, 'node_modules', '.bin', 'mcp-inspector');
  let version: string | undefined;
  try {
    version = JSON.parse(fs.readFileSync(path.join(INSPECTOR_CACHE, 'node_modules', INSPECTOR.pkg, 'package.json'), 'utf8')).version;
  } catch {
    version = undefined;
  }
  if (version !== INSPECTOR.version) {
    fs.mkdirSync(INSPECTOR_CACHE, { recursive: true });
    fs.writeFileSync(path.join(INSPECTOR_CACHE, 'package.json'), '{ "name": "inspector-for-tests", "private": true }\n');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', `${INSPECTOR.pkg}@${INSPECTOR.version}`], {
      cwd: INSPECTOR_CACHE,
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 15 * 60_000,
    });
  }
  if (!fs.existsSync(bin)) throw new Error(`mcp-inspector is missing from ${bin} after npm install`);
  return bin;
}
