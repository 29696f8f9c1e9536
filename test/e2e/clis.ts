import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/spool.js';

/**
 * The real agent CLIs, at pinned versions, installed by the tests into an ignored cache
 * folder (never runtime dependencies of agent-async). Each version has its own folder, so
 * worktrees that pin different versions can share the cache without reinstalling each
 * other's. Claude Code 2.1.332 declares Node >= 22 but is a native binary: it runs on 20.
 */
export const PINNED = {
  codex: { pkg: '@openai/codex', version: '0.171.0', bin: 'codex' },
  claude: { pkg: '@anthropic-ai/claude-code', version: '2.1.332', bin: 'claude' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0', bin: 'gemini' },
} as const;

export const CLI_CACHE = path.join(ROOT, '.cache', 'agent-clis');

function versionFolder({ pkg, version }: { pkg: string; version: string }): string {
  return path.join(CLI_CACHE, `${pkg.replace('@', '').replace('/', '+')}@${version}`);
}

function installedVersion(folder: string, pkg: string): string | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(folder, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/**
 * Installs the pinned CLIs when missing; returns a folder holding links to their binaries
 * (`codex`, `claude`, `gemini`), to put first on PATH.
 */
export function ensureAgentClis(): string {
  const bin = path.join(CLI_CACHE, `bin-${Object.values(PINNED).map((cli) => `${cli.bin}-${cli.version}`).join('_')}`);
  fs.mkdirSync(bin, { recursive: true });
  for (const cli of Object.values(PINNED)) {
    const folder = versionFolder(cli);
    if (installedVersion(folder, cli.pkg) !== cli.version) {
      fs.mkdirSync(folder, { recursive: true });
      fs.writeFileSync(path.join(folder, 'package.json'), '{ "name": "agent-cli-for-tests", "private": true }\n');
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--engine-strict=false', `${cli.pkg}@${cli.version}`], {
        cwd: folder,
        stdio: ['ignore', 'inherit', 'inherit'],
        timeout: 15 * 60_000,
      });
    }
    const target = path.join(folder, 'node_modules', '.bin', cli.bin);
    if (!fs.existsSync(target)) throw new Error(`the ${cli.bin} CLI is missing from ${target} after npm install`);
    const link = path.join(bin, cli.bin);
    if (!fs.existsSync(link)) replaceLink(target, link);
  }
  return bin;
}

/** A link that is missing or dangling (the shared cache was filled from a worktree since removed) is made again. */
function replaceLink(target: string, link: string): void {
  fs.rmSync(link, { force: true });
  try {
    fs.symlinkSync(target, link);
  } catch (error) {
    // another test run made it meanwhile
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
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
