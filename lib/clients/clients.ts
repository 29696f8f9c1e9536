import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError, quoteInput } from '../errors.js';
import { resolveExecutable } from '../which.js';
import { PACKAGE_ROOT } from '../version.js';
import { applyFileEdit, undoFileEdit, writeKeepingMode } from './file-edit.js';
import { addArrayItems, addMember, isEmptyObject, missingArrayItems, readMember, removeArrayItems, removeMember } from './json-edit.js';
import { allowedTools, describeLevel, levelEnv, type AllowLevel, type ToolInfo } from './permissions.js';
import { loadRecords, saveRecords, sha256, type Registration } from './records.js';
import { CLIENT_NAMES, type ClientName } from './names.js';
import { addServer, hasServer, removeServer, type TomlTable } from './toml-edit.js';

/**
 * Registering the MCP server with each client so that it works as written, headless runs
 * included: Claude Code through its own CLI (`claude mcp add -s user`) plus its settings'
 * permissions.allow; Codex, Gemini, Cursor and Claude Desktop by editing their config file as
 * text (other entries, comments and formatting untouched, a backup kept, a malformed file
 * reported and never overwritten), because their CLIs cannot write what is needed (Codex:
 * `required`, the tool timeout, per-tool approvals; Gemini: env and a command whose arguments
 * start with a dash).
 */

export const SERVER_NAME = 'agent-async';
export { CLIENT_NAMES, type ClientName } from './names.js';

/** The clients where add-agent can pre-approve tools; the others ask in their own UI. */
export const CLIENTS_WITH_LEVELS: readonly ClientName[] = ['claude-code', 'codex', 'gemini'];

/**
 * The level of a first registration without a flag. Codex's: `codex exec` cannot ask and
 * refuses every tool that is not pre-approved, so a plain `add-agent codex` would not work.
 * A later registration without a flag keeps the level recorded.
 */
export const DEFAULT_LEVELS: Record<ClientName, AllowLevel> = { 'claude-code': 'none', codex: 'agents', gemini: 'none', cursor: 'none', 'claude-desktop': 'none' };

export interface ServerCommand {
  command: string;
  args: string[];
}

/**
 * How clients start the server: this node and this package's launcher, by absolute path, and
 * `--home` when the spool is not the default one (Codex passes the server only a few
 * variables, so an AGENT_ASYNC_HOME in the user's shell would not reach it).
 */
export function serverCommand(env: NodeJS.ProcessEnv = process.env, spoolHome?: string): ServerCommand {
  const launcher = path.join(PACKAGE_ROOT, 'bin', 'agent-async.js');
  // prefer a stable `node` on PATH (e.g. /usr/bin/node) over a versioned install path
  const onPath = resolveExecutable('node', '/', env.PATH ?? '');
  const node = onPath.ok && fs.realpathSync(onPath.file) === fs.realpathSync(process.execPath) ? onPath.file : process.execPath;
  const defaultSpool = path.join(env.HOME ?? os.homedir(), '.agent-async');
  const home = spoolHome !== undefined && path.resolve(spoolHome) !== defaultSpool ? ['--home', path.resolve(spoolHome)] : [];
  return { command: node, args: [launcher, 'serve', ...home] };
}

export interface ClientStatus {
  client: ClientName;
  detected: boolean;
  registered: boolean;
  /** 'cli' or 'file' */
  method: 'cli' | 'file' | null;
  /** The CLI or the config file used. */
  via: string | null;
  note: string | null;
}

interface Context {
  env: NodeJS.ProcessEnv;
  home: string;
}

function which(ctx: Context, binary: string): string | null {
  const found = resolveExecutable(binary, '/', ctx.env.PATH ?? '');
  return found.ok ? found.file : null;
}

function run(cli: string, args: string[], ctx: Context): { status: number | null; output: string } {
  const result = spawnSync(cli, args, { encoding: 'utf8', env: ctx.env, timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

/** What a registration writes: the server entry of a config file, or the client CLI's argv. */
type Entry = Record<string, unknown>;

interface ServersFile {
  registered: (text: string) => boolean;
  add: (text: string, entry: Entry) => string;
  remove: (text: string) => string;
  isEmpty: (text: string) => boolean;
}

function jsonServersFile(file: string): ServersFile {
  return {
    registered: (text) => readMember(text, file, ['mcpServers', SERVER_NAME]) !== undefined,
    add: (text, entry) => addMember(removeMember(text, file, ['mcpServers', SERVER_NAME]), file, ['mcpServers'], SERVER_NAME, entry).text,
    remove: (text) => {
      const without = removeMember(text, file, ['mcpServers', SERVER_NAME]);
      return isEmptyObject(without, file, ['mcpServers']) ? removeMember(without, file, ['mcpServers']) : without;
    },
    isEmpty: (text) => text.trim() === '' || isEmptyObject(text, file, []),
  };
}

function tomlServersFile(file: string): ServersFile {
  return {
    registered: (text) => hasServer(text, file, SERVER_NAME),
    add: (text, entry) => addServer(removeServer(text, file, SERVER_NAME), file, SERVER_NAME, entry as TomlTable),
    remove: (text) => removeServer(text, file, SERVER_NAME),
    isEmpty: (text) => text.trim() === '',
  };
}

/** What one registration is made of, given the server command and the level. */
interface Plan {
  server: ServerCommand;
  level: AllowLevel;
  tools: readonly ToolInfo[];
  waitMaxSeconds: number;
}

interface ClientFile {
  path: string;
  format: 'json' | 'toml';
  present: boolean;
}

interface ClientDefinition {
  name: ClientName;
  /** Registration through the client's CLI (Claude Code). */
  cli?: { binary: string; add: (plan: Plan) => string[]; remove: string[]; get: string[] };
  /** Registration through the config file. */
  file?: (ctx: Context) => ClientFile;
  entry?: (plan: Plan) => Entry;
}

function claudeDesktopConfig(ctx: Context): string {
  if (process.platform === 'darwin') return path.join(ctx.home, 'Library', 'Application Support', 'Claude', 'claude_desktop_config.json');
  if (process.platform === 'win32') return path.join(ctx.env.APPDATA ?? path.join(ctx.home, 'AppData', 'Roaming'), 'Claude', 'claude_desktop_config.json');
  return path.join(ctx.env.XDG_CONFIG_HOME ?? path.join(ctx.home, '.config'), 'Claude', 'claude_desktop_config.json');
}

function envFlags(env: Record<string, string>): string[] {
  return Object.entries(env).map(([key, value]) => `${key}=${value}`);
}

/** A command entry with `env` only when there is something in it. */
function commandEntry(plan: Plan, env: Record<string, string>): Entry {
  return { command: plan.server.command, args: plan.server.args, ...(Object.keys(env).length > 0 ? { env } : {}) };
}

/** Codex's tool timeout: comfortably above the longest wait (its default, 60 s, is not). */
export function codexToolTimeout(waitMaxSeconds: number): number {
  return Math.max(120, Math.ceil(waitMaxSeconds) + 60);
}

/** Gemini cuts a tool call off after `timeout` ms (default 10 min); set only when a wait could take longer. */
const GEMINI_DEFAULT_TIMEOUT_MS = 600_000;

const DEFINITIONS: Record<ClientName, ClientDefinition> = {
  'claude-code': {
    name: 'claude-code',
    cli: {
      binary: 'claude',
      // -e takes several values, so it goes after the name and ends at `--`
      add: (plan) => ['mcp', 'add', '-s', 'user', SERVER_NAME, ...envFlags(levelEnv(plan.level)).flatMap((pair) => ['-e', pair]), '--', plan.server.command, ...plan.server.args],
      remove: ['mcp', 'remove', '-s', 'user', SERVER_NAME],
      get: ['mcp', 'get', SERVER_NAME],
    },
  },
  codex: {
    name: 'codex',
    file: (ctx) => {
      const dir = ctx.env.CODEX_HOME ?? path.join(ctx.home, '.codex');
      return { path: path.join(dir, 'config.toml'), format: 'toml', present: fs.existsSync(dir) || which(ctx, 'codex') !== null };
    },
    entry: (plan) => ({
      ...commandEntry(plan, levelEnv(plan.level)),
      // codex exec sends its first model request without waiting for a server that is not required
      required: true,
      startup_timeout_sec: 30,
      tool_timeout_sec: codexToolTimeout(plan.waitMaxSeconds),
      // codex asks before every tool not marked read-only, and `codex exec` cannot ask: it refuses
      ...(plan.level === 'none' ? {} : { tools: Object.fromEntries(allowedTools(plan.level, plan.tools).map((tool) => [tool, { approval_mode: 'approve' }])) }),
    }),
  },
  gemini: {
    name: 'gemini',
    file: (ctx) => {
      const dir = path.join(ctx.env.GEMINI_CLI_HOME ?? ctx.home, '.gemini');
      return { path: path.join(dir, 'settings.json'), format: 'json', present: fs.existsSync(dir) || which(ctx, 'gemini') !== null };
    },
    entry: (plan) => {
      const timeout = (Math.ceil(plan.waitMaxSeconds) + 60) * 1000;
      return {
        ...commandEntry(plan, levelEnv(plan.level)),
        ...(timeout > GEMINI_DEFAULT_TIMEOUT_MS ? { timeout } : {}),
        // trust covers every tool the server offers, so below exec the level also limits what is offered
        ...(plan.level === 'none' ? {} : { trust: true }),
        ...(plan.level === 'none' || plan.level === 'exec' ? {} : { includeTools: allowedTools(plan.level, plan.tools) }),
      };
    },
  },
  cursor: {
    name: 'cursor',
    file: (ctx) => {
      const dir = path.join(ctx.home, '.cursor');
      const present = fs.existsSync(dir) || which(ctx, 'cursor') !== null || which(ctx, 'cursor-agent') !== null;
      return { path: path.join(dir, 'mcp.json'), format: 'json', present };
    },
    entry: (plan) => commandEntry(plan, {}),
  },
  'claude-desktop': {
    name: 'claude-desktop',
    file: (ctx) => {
      const file = claudeDesktopConfig(ctx);
      return { path: file, format: 'json', present: fs.existsSync(path.dirname(file)) };
    },
    entry: (plan) => commandEntry(plan, {}),
  },
};

function context(env: NodeJS.ProcessEnv): Context {
  return { env, home: env.HOME ?? os.homedir() };
}

export function parseClient(value: unknown): ClientName {
  if (typeof value === 'string' && (CLIENT_NAMES as readonly string[]).includes(value)) return value as ClientName;
  throw new UserError('bad_input', `client: ${quoteInput(value)} is not a client; allowed: ${CLIENT_NAMES.join(', ')}`, 'client');
}

function editorFor(format: 'json' | 'toml', file: string): ServersFile {
  return format === 'json' ? jsonServersFile(file) : tomlServersFile(file);
}

function fileRegistered(file: { path: string; format: 'json' | 'toml' }): boolean {
  if (!fs.existsSync(file.path)) return false;
  return editorFor(file.format, file.path).registered(fs.readFileSync(file.path, 'utf8'));
}

/** Detected, registered, and through what, for one client. */
export function clientStatus(name: ClientName, env: NodeJS.ProcessEnv = process.env): ClientStatus {
  const ctx = context(env);
  const def = DEFINITIONS[name];
  if (def.cli) {
    const cli = which(ctx, def.cli.binary);
    if (!cli) return { client: name, detected: false, registered: false, method: null, via: null, note: null };
    return { client: name, detected: true, registered: run(cli, def.cli.get, ctx).status === 0, method: 'cli', via: cli, note: null };
  }
  const file = def.file!(ctx);
  if (!file.present) return { client: name, detected: false, registered: false, method: null, via: null, note: null };
  try {
    return { client: name, detected: true, registered: fileRegistered(file), method: 'file', via: file.path, note: null };
  } catch (error) {
    return { client: name, detected: true, registered: false, method: 'file', via: file.path, note: (error as Error).message };
  }
}

export function allClientStatus(env: NodeJS.ProcessEnv = process.env): ClientStatus[] {
  return CLIENT_NAMES.map((name) => clientStatus(name, env));
}

export interface ChangeResult {
  client: ClientName;
  changed: boolean;
  message: string;
  /** What the user should know next: what is pre-approved, what the client still needs. */
  notes?: string[];
}

export interface AddOptions {
  /** The server command (default: this install's, see serverCommand). */
  server?: ServerCommand;
  /** The tools to pre-approve (default: the recorded level, else DEFAULT_LEVELS); clients without a mechanism for it take only 'none'. */
  level?: AllowLevel;
  /** The server's tools (name, read-only), to know what a level allows. */
  tools?: readonly ToolInfo[];
  /** The spool's wait_max_seconds: client time limits must let the longest wait finish. */
  waitMaxSeconds?: number;
}

function planFor(name: ClientName, env: NodeJS.ProcessEnv, options: AddOptions, previous: Registration | undefined): Plan {
  const level = options.level ?? previous?.level ?? DEFAULT_LEVELS[name];
  if (level !== 'none' && !CLIENTS_WITH_LEVELS.includes(name)) {
    throw new UserError('bad_input', `allow-tools: ${name} has no setting agent-async can write to pre-approve tools; it asks in its own window (allowed for ${CLIENTS_WITH_LEVELS.join(', ')})`, 'allow-tools');
  }
  return { server: options.server ?? serverCommand(env), level, tools: options.tools ?? [], waitMaxSeconds: options.waitMaxSeconds ?? 55 };
}

function fingerprintOf(written: unknown): string {
  return sha256(JSON.stringify(written));
}

/** Registers the server with a client (idempotent). `recordsHome` is where records are kept. */
export function addClient(name: ClientName, recordsHome: string, env: NodeJS.ProcessEnv = process.env, options: AddOptions = {}): ChangeResult {
  const ctx = context(env);
  const def = DEFINITIONS[name];
  const status = clientStatus(name, env);
  if (!status.detected) {
    throw new UserError('conflict', `client: ${name} was not found on this machine (no ${def.cli?.binary ?? 'config folder'}); install it first`, 'client');
  }
  if (status.note) throw new UserError('conflict', status.note, 'client');
  const records = loadRecords(recordsHome);
  const previous = records.registrations[name];
  const plan = planFor(name, env, options, previous);
  const written = def.cli ? def.cli.add(plan) : def.entry!(plan);
  const fingerprint = fingerprintOf(written);
  const unchanged = status.registered && previous?.fingerprint === fingerprint;
  if (!unchanged) {
    records.registrations[name] = register(def, ctx, status, plan, written, previous);
    records.registrations[name].fingerprint = fingerprint;
    saveRecords(recordsHome, records);
  }
  // after the registration, so a failed one leaves no permissions behind
  const permissions = name === 'claude-code' ? syncClaudePermissions(plan, recordsHome, env) : null;
  const notes = [...(permissions ? [permissions.message] : []), ...levelNotes(name, plan, ctx)];
  if (unchanged) return { client: name, changed: permissions?.changed ?? false, message: `${name}: already registered (${status.via})`, notes };
  return { client: name, changed: true, message: `${name}: registered (${status.via})`, notes };
}

function register(def: ClientDefinition, ctx: Context, status: ClientStatus, plan: Plan, written: string[] | Entry, previous: Registration | undefined): Registration {
  const command = [plan.server.command, ...plan.server.args];
  const at = new Date().toISOString();
  if (def.cli) {
    const argv = written as string[];
    if (status.registered) run(status.via!, def.cli.remove, ctx);
    const added = run(status.via!, argv, ctx);
    if (added.status !== 0) throw new UserError('conflict', `${def.name}: \`${def.cli.binary} ${argv.join(' ')}\` failed: ${added.output}`, 'client');
    return { method: 'cli', cli: status.via, edit: null, command, at, level: plan.level };
  }
  const file = def.file!(ctx);
  const editor = editorFor(file.format, file.path);
  const edit = applyFileEdit(file.path, (text) => editor.add(text, written as Entry), file.format === 'json' ? '{}\n' : '', previous?.edit ?? null);
  return { method: 'file', cli: null, edit, command, at, level: plan.level };
}

/** Claude Code's permissions.allow holds exactly the level's tools (none: ours are taken out). */
function syncClaudePermissions(plan: Plan, recordsHome: string, env: NodeJS.ProcessEnv): ChangeResult | null {
  if (plan.level === 'none') return disallowTools(recordsHome);
  return allowTools(allowedTools(plan.level, plan.tools), recordsHome, env);
}

/** What the level means for this client, and what the user must still do. */
function levelNotes(name: ClientName, plan: Plan, ctx: Context): string[] {
  const notes: string[] = [];
  if (CLIENTS_WITH_LEVELS.includes(name)) notes.push(`${name}: ${describeLevel(plan.level, plan.tools)}`);
  if (name === 'codex' && plan.level === 'none') {
    notes.push('codex: `codex exec` cannot ask, so it refuses every tool not marked read-only; `--allow-tools` pre-approves the agent tools');
  }
  if (name === 'gemini' && plan.level === 'none') {
    notes.push('gemini: `gemini -p` offers the tools of an untrusted server to the model only with `--approval-mode yolo`; `--allow-tools` trusts the server (trust covers every tool it offers, so it then offers only the allowed ones)');
  }
  if (name === 'claude-code' && plan.level === 'none') {
    notes.push('claude-code: `claude -p` refuses a tool it may not ask about unless it is allowed (`--allowedTools` or `--allow-tools` here)');
  }
  if (name === 'claude-code') notes.push(...claudeTimeoutNotes(plan.waitMaxSeconds, ctx));
  return notes;
}

/** Claude Code's MCP_TOOL_TIMEOUT is a hard limit per call (progress does not extend it): it must exceed the longest wait. */
function claudeTimeoutNotes(waitMaxSeconds: number, ctx: Context): string[] {
  const needed = (Math.ceil(waitMaxSeconds) + 10) * 1000;
  const settings = claudeSettingsFile(ctx.env);
  const sources: Array<[string, unknown]> = [['the environment', ctx.env.MCP_TOOL_TIMEOUT]];
  try {
    if (fs.existsSync(settings)) sources.push([settings, readMember(fs.readFileSync(settings, 'utf8'), settings, ['env', 'MCP_TOOL_TIMEOUT'])]);
  } catch {
    // a broken settings file is reported where it is edited
  }
  return sources
    .filter(([, value]) => value !== undefined && value !== '' && Number(value) < needed)
    .map(([where, value]) => `claude-code: MCP_TOOL_TIMEOUT=${String(value)} (${where}) cuts off every tool call after that many ms, and a wait may take ${Math.ceil(waitMaxSeconds)} s (wait_max_seconds): set it to ${needed} or more, or unset it`);
}

export function removeClient(name: ClientName, recordsHome: string, env: NodeJS.ProcessEnv = process.env): ChangeResult {
  const ctx = context(env);
  const def = DEFINITIONS[name];
  const records = loadRecords(recordsHome);
  const record = records.registrations[name];
  const status = clientStatus(name, env);
  let changed = false;
  if (record?.method === 'file' && record.edit) {
    const editor = editorFor(record.edit.file.endsWith('.toml') ? 'toml' : 'json', record.edit.file);
    undoFileEdit(record.edit, editor.remove, editor.isEmpty);
    // the original bytes came back, and they held an older registration of ours
    const file = record.edit.file;
    if (fs.existsSync(file) && editor.registered(fs.readFileSync(file, 'utf8'))) writeKeepingMode(file, editor.remove(fs.readFileSync(file, 'utf8')));
    changed = true;
  } else if (status.method === 'cli' && status.registered) {
    const removed = run(status.via!, def.cli!.remove, ctx);
    if (removed.status !== 0) throw new UserError('conflict', `${name}: \`${def.cli!.binary} ${def.cli!.remove.join(' ')}\` failed: ${removed.output}`, 'client');
    changed = true;
  } else if (status.method === 'file' && status.registered && status.via) {
    // registered by hand, or through the client's CLI by an older version
    const file = def.file!(ctx);
    writeKeepingMode(file.path, editorFor(file.format, file.path).remove(fs.readFileSync(file.path, 'utf8')));
    changed = true;
  }
  if (record) {
    delete records.registrations[name];
    saveRecords(recordsHome, records);
  }
  const permissions = name === 'claude-code' ? disallowTools(recordsHome) : null;
  const message = changed ? `${name}: unregistered` : `${name}: was not registered`;
  return { client: name, changed: changed || permissions !== null, message: permissions ? `${message}; ${permissions.message.replace(/^claude-code: /, '')}` : message };
}

// ── Claude Code tool permissions ───────────────────────────────────────────────────────────

export function claudeSettingsFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CLAUDE_CONFIG_DIR) return path.join(env.CLAUDE_CONFIG_DIR, 'settings.json');
  return path.join(context(env).home, '.claude', 'settings.json');
}

/**
 * Lets Claude Code call exactly these tools without asking (its settings' permissions.allow):
 * what we allowed earlier and is not in `tools` any more is taken out again; an item the user
 * had allowed before us always stays.
 */
export function allowTools(tools: string[], recordsHome: string, env: NodeJS.ProcessEnv = process.env): ChangeResult {
  const file = claudeSettingsFile(env);
  const items = tools.map((tool) => `mcp__${SERVER_NAME}__${tool}`);
  const records = loadRecords(recordsHome);
  const previous = records.allow_tools;
  const dropped = (previous?.items ?? []).filter((item) => !items.includes(item));
  let added: string[] = [];
  const edit = applyFileEdit(file, (text) => {
    const kept = removeArrayItems(text, file, ['permissions', 'allow'], dropped);
    added = missingArrayItems(kept, file, ['permissions', 'allow'], items);
    return addArrayItems(kept, file, ['permissions', 'allow'], added);
  }, '{}\n', previous);
  // only what we added: items the user had allowed before stay when this is undone
  const ours = [...new Set([...(previous?.items ?? []).filter((item) => items.includes(item)), ...added])];
  records.allow_tools = { ...edit, items: ours };
  saveRecords(recordsHome, records);
  return { client: 'claude-code', changed: added.length > 0 || dropped.length > 0, message: `claude-code: ${items.length} agent-async tools allowed in ${file}` };
}

export function disallowTools(recordsHome: string): ChangeResult | null {
  const records = loadRecords(recordsHome);
  const edit = records.allow_tools;
  if (!edit) return null;
  undoFileEdit(edit, (text) => removeArrayItems(text, edit.file, ['permissions', 'allow'], edit.items), (text) => text.trim() === '' || isEmptyObject(text, edit.file, []));
  records.allow_tools = null;
  saveRecords(recordsHome, records);
  return { client: 'claude-code', changed: true, message: `claude-code: tool permissions removed from ${edit.file}` };
}
