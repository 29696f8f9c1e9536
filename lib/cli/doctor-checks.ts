import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeAgents } from '../agents/probe.js';
import { allClientStatus, serverCommand } from '../clients/clients.js';
import { loadConfig } from '../config.js';
import { locateSpool, queueSummary, type SpoolPaths } from '../jobs.js';
import { autoUpdateEnabled } from '../install/schedule.js';
import type { Check } from './doctor.js';

/** The checks `agent-async doctor` runs (see doctor.ts). */

function nodeCheck(): Check {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const ok = major > 20 || (major === 20 && minor >= 19);
  return ok
    ? { level: 'ok', what: 'node', detail: process.version }
    : { level: 'fail', what: 'node', detail: `${process.version} is too old`, fix: 'install Node.js 20.19 or newer (https://nodejs.org)' };
}

function spoolChecks(paths: SpoolPaths): Check[] {
  const checks: Check[] = [];
  if (!fs.existsSync(paths.home)) {
    checks.push({ level: 'ok', what: 'spool', detail: `${paths.home} (not created yet: the first job creates it)` });
    return checks;
  }
  const stat = fs.statSync(paths.home);
  const mode = stat.mode & 0o777;
  checks.push(mode & 0o077
    ? { level: 'fail', what: 'spool permissions', detail: `${paths.home} is mode ${mode.toString(8)}: other users can read your jobs`, fix: `chmod 700 ${paths.home}` }
    : { level: 'ok', what: 'spool permissions', detail: `${paths.home} is private (mode ${mode.toString(8)})` });
  try {
    fs.accessSync(paths.home, fs.constants.W_OK);
  } catch {
    checks.push({ level: 'fail', what: 'spool', detail: `${paths.home} is not writable`, fix: `chown -R ${os.userInfo().username} ${paths.home}` });
  }
  try {
    loadConfig(paths);
    checks.push({ level: 'ok', what: 'config', detail: fs.existsSync(paths.config) ? paths.config : 'defaults (no config.json)' });
  } catch (error) {
    checks.push({ level: 'fail', what: 'config', detail: (error as Error).message, fix: `fix or remove ${paths.config}` });
  }
  const queue = queueSummary(paths);
  const pending = queue.pending.length;
  const corrupt = queue.unreadable.length;
  if (queue.runner.alive) checks.push({ level: 'ok', what: 'runner', detail: `alive, pid ${queue.runner.pid} (epoch ${queue.runner.epoch})` });
  else if (pending > 0) checks.push({ level: 'fail', what: 'runner', detail: `${pending} pending jobs but no runner`, fix: 'run `agent-async runner` (or any `agent-async wait`), and read runner.log in the spool' });
  else checks.push({ level: 'ok', what: 'runner', detail: 'idle (it starts on the next job)' });
  if (corrupt > 0) checks.push({ level: 'warn', what: 'jobs', detail: `${corrupt} active jobs have an unreadable state.json`, fix: '`agent-async ls` shows them as UNREADABLE; cancel them or remove their folders' });
  return checks;
}

/** Whether a CLI looks logged in, from files and variables only (no network). */
function loginState(agent: string, env: NodeJS.ProcessEnv): boolean | null {
  const home = env.HOME ?? os.homedir();
  const exists = (...parts: string[]): boolean => fs.existsSync(path.join(home, ...parts));
  switch (agent) {
    case 'codex':
      return Boolean(env.CODEX_API_KEY || env.OPENAI_API_KEY) || fs.existsSync(path.join(env.CODEX_HOME ?? path.join(home, '.codex'), 'auth.json'));
    case 'claude':
      return Boolean(env.ANTHROPIC_API_KEY || env.ANTHROPIC_AUTH_TOKEN) || exists('.claude', '.credentials.json') || exists('.claude.json');
    case 'gemini':
      return Boolean(env.GEMINI_API_KEY || env.GOOGLE_API_KEY || env.GOOGLE_GENAI_USE_VERTEXAI) || exists('.gemini', 'oauth_creds.json');
    case 'cursor':
      return Boolean(env.CURSOR_API_KEY) || exists('.cursor', 'cli-config.json');
    default:
      return null;
  }
}

function agentChecks(paths: SpoolPaths, env: NodeJS.ProcessEnv): Check[] {
  let config;
  try {
    config = loadConfig(paths, env);
  } catch {
    return [];
  }
  const probes = probeAgents(config, env.PATH ?? '');
  const installed = probes.filter((p) => p.agent !== 'exec' && p.installed);
  const checks: Check[] = probes.filter((p) => p.agent !== 'exec').map((probe) => {
    if (!probe.installed) return { level: 'ok' as const, what: `agent ${probe.agent}`, detail: 'not installed (optional)', fix: probe.install_hint ?? undefined };
    const login = loginState(probe.agent, env);
    if (login === false) {
      return { level: 'warn' as const, what: `agent ${probe.agent}`, detail: `${probe.version ?? probe.path}: no login or API key found`, fix: probe.login_hint ?? `log in once with ${probe.binary}, or set the API key variable its documentation names` };
    }
    return { level: 'ok' as const, what: `agent ${probe.agent}`, detail: `${probe.version ?? 'installed'} (${probe.path})` };
  });
  if (installed.length === 0) {
    checks.push({ level: 'warn', what: 'agents', detail: 'no agent CLI is installed; only exec jobs can run', fix: 'npm install -g @openai/codex (or @anthropic-ai/claude-code, @google/gemini-cli)' });
  }
  return checks;
}

function clientChecks(env: NodeJS.ProcessEnv): Check[] {
  const expected = serverCommand(env);
  const checks: Check[] = [];
  const clients = allClientStatus(env);
  for (const client of clients) {
    if (!client.detected) continue;
    if (client.note) checks.push({ level: 'fail', what: `client ${client.client}`, detail: client.note });
    else if (client.registered) checks.push({ level: 'ok', what: `client ${client.client}`, detail: `registered (${client.method}: ${client.via})` });
    else checks.push({ level: 'warn', what: `client ${client.client}`, detail: 'detected, agent-async not registered', fix: `agent-async add-agent ${client.client}` });
  }
  if (!clients.some((c) => c.registered)) {
    checks.push({ level: 'warn', what: 'clients', detail: 'agent-async is registered with no MCP client', fix: 'agent-async add-agent claude-code (or codex, cursor, claude-desktop, gemini)' });
  }
  if (!fs.existsSync(expected.args[0]!)) {
    checks.push({ level: 'fail', what: 'server', detail: `${expected.args[0]} is missing`, fix: 'reinstall agent-async' });
  }
  return checks;
}

export function runDoctor(home: string, env: NodeJS.ProcessEnv = process.env): Check[] {
  const paths = locateSpool(home);
  return [
    nodeCheck(),
    ...spoolChecks(paths),
    ...agentChecks(paths, env),
    ...clientChecks(env),
    { level: 'ok', what: 'auto-update', detail: autoUpdateEnabled(env) ? 'daily' : 'off (agent-async enable-auto-update)' },
  ];
}
