import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError, quoteInput } from '../errors.js';
import { resolveExecutable } from '../which.js';
import { PACKAGE_ROOT } from '../version.js';
import { applyFileEdit, undoFileEdit, writeKeepingMode } from './file-edit.js';
import { addArrayItems, addMember, isEmptyObject, missingArrayItems, readMember, removeArrayItems, removeMember } from './json-edit.js';
import { loadRecords, saveRecords, type Registration } from './records.js';
import { addServer, hasServer, removeServer } from './toml-edit.js';

/**
 * Registering the MCP server with each client: through the client's own CLI where it has one
 * (`claude mcp add -s user`, `codex mcp add`, `gemini mcp add -s user`), otherwise by editing
 * its config file as text (other entries, comments and formatting untouched, a backup kept,
 * a malformed file reported and never overwritten).
 */

export const SERVER_NAME = 'agent-async';
export const CLIENT_NAMES = ['claude-code', 'codex', 'cursor', 'claude-desktop', 'gemini'] as const;
export type ClientName = (typeof CLIENT_NAMES)[number];

export interface ServerCommand {
  command: string;
  args: string[];
}

/** How clients start the server: this node and this package's launcher, by absolute path. */
export function serverCommand(env: NodeJS.ProcessEnv = process.env): ServerCommand {
  const launcher = path.join(PACKAGE_ROOT, 'bin', 'agent-async.js');
  // prefer a stable `node` on PATH (e.g. /usr/bin/node) over a versioned install path
  const onPath = resolveExecutable('node', '/', env.PATH ?? '');
  const node = onPath.ok && fs.realpathSync(onPath.file) === fs.realpathSync(process.execPath) ? onPath.file : process.execPath;
  return { command: node, args: [launcher, 'serve'] };
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

function jsonServersFile(file: string): { registered: (text: string) => boolean; add: (text: string, server: ServerCommand) => string; remove: (text: string) => string; isEmpty: (text: string) => boolean } {
  return {
    registered: (text) => readMember(text, file, ['mcpServers', SERVER_NAME]) !== undefined,
    add: (text, server) => {
      const cleared = removeMember(text, file, ['mcpServers', SERVER_NAME]);
      return addMember(cleared, file, ['mcpServers'], SERVER_NAME, { command: server.command, args: server.args }).text;
    },
    remove: (text) => {
      const without = removeMember(text, file, ['mcpServers', SERVER_NAME]);
      return isEmptyObject(without, file, ['mcpServers']) ? removeMember(without, file, ['mcpServers']) : without;
    },
    isEmpty: (text) => text.trim() === '' || isEmptyObject(text, file, []),
  };
}

function tomlServersFile(file: string): ReturnType<typeof jsonServersFile> {
  return {
    registered: (text) => hasServer(text, file, SERVER_NAME),
    add: (text, server) => addServer(removeServer(text, file, SERVER_NAME), file, SERVER_NAME, server.command, server.args),
    remove: (text) => removeServer(text, file, SERVER_NAME),
    isEmpty: (text) => text.trim() === '',
  };
}

interface ClientDefinition {
  name: ClientName;
  /** The client's CLI, if it has one that manages MCP servers. */
  cli?: { binary: string; add: (server: ServerCommand) => string[]; remove: string[]; get?: string[] };
  /** The config file, when registration goes through it (always, or when the CLI is missing). */
  file?: (ctx: Context) => { path: string; format: 'json' | 'toml'; present: boolean } | null;
}

function claudeDesktopConfig(ctx: Context): string {
  if (process.platform === 'darwin') return path.join(ctx.home, 'Library', 'Application Support', 'Claude', 'claude_desktop_config.json');
  if (process.platform === 'win32') return path.join(ctx.env.APPDATA ?? path.join(ctx.home, 'AppData', 'Roaming'), 'Claude', 'claude_desktop_config.json');
  return path.join(ctx.env.XDG_CONFIG_HOME ?? path.join(ctx.home, '.config'), 'Claude', 'claude_desktop_config.json');
}

const DEFINITIONS: Record<ClientName, ClientDefinition> = {
  'claude-code': {
    name: 'claude-code',
    cli: {
      binary: 'claude',
      add: (s) => ['mcp', 'add', '-s', 'user', SERVER_NAME, '--', s.command, ...s.args],
      remove: ['mcp', 'remove', '-s', 'user', SERVER_NAME],
      get: ['mcp', 'get', SERVER_NAME],
    },
  },
  codex: {
    name: 'codex',
    cli: {
      binary: 'codex',
      add: (s) => ['mcp', 'add', SERVER_NAME, '--', s.command, ...s.args],
      remove: ['mcp', 'remove', SERVER_NAME],
      get: ['mcp', 'get', SERVER_NAME],
    },
    file: (ctx) => {
      const dir = ctx.env.CODEX_HOME ?? path.join(ctx.home, '.codex');
      return { path: path.join(dir, 'config.toml'), format: 'toml', present: fs.existsSync(dir) };
    },
  },
  gemini: {
    name: 'gemini',
    cli: {
      binary: 'gemini',
      add: (s) => ['mcp', 'add', '-s', 'user', SERVER_NAME, s.command, ...s.args],
      remove: ['mcp', 'remove', '-s', 'user', SERVER_NAME],
    },
    file: (ctx) => {
      const dir = path.join(ctx.env.GEMINI_CLI_HOME ?? ctx.home, '.gemini');
      return { path: path.join(dir, 'settings.json'), format: 'json', present: fs.existsSync(dir) };
    },
  },
  cursor: {
    name: 'cursor',
    file: (ctx) => {
      const dir = path.join(ctx.home, '.cursor');
      const present = fs.existsSync(dir) || which(ctx, 'cursor') !== null || which(ctx, 'cursor-agent') !== null;
      return { path: path.join(dir, 'mcp.json'), format: 'json', present };
    },
  },
  'claude-desktop': {
    name: 'claude-desktop',
    file: (ctx) => {
      const file = claudeDesktopConfig(ctx);
      return { path: file, format: 'json', present: fs.existsSync(path.dirname(file)) };
    },
  },
};

function context(env: NodeJS.ProcessEnv): Context {
  return { env, home: env.HOME ?? os.homedir() };
}

export function parseClient(value: unknown): ClientName {
  if (typeof value === 'string' && (CLIENT_NAMES as readonly string[]).includes(value)) return value as ClientName;
  throw new UserError('bad_input', `client: ${quoteInput(value)} is not a client; allowed: ${CLIENT_NAMES.join(', ')}`, 'client');
}

function editorFor(format: 'json' | 'toml', file: string): ReturnType<typeof jsonServersFile> {
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
  const cli = def.cli ? which(ctx, def.cli.binary) : null;
  if (def.cli && cli) {
    let registered: boolean;
    let note: string | null = null;
    if (def.cli.get) {
      registered = run(cli, def.cli.get, ctx).status === 0;
    } else {
      const file = def.file?.(ctx);
      try {
        registered = file ? fileRegistered(file) : false;
      } catch (error) {
        registered = false;
        note = (error as Error).message;
      }
    }
    return { client: name, detected: true, registered, method: 'cli', via: cli, note };
  }
  const file = def.file?.(ctx);
  if (!file?.present) return { client: name, detected: false, registered: false, method: null, via: null, note: null };
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
}

/** Registers the server with a client (idempotent). `recordsHome` is where records are kept. */
export function addClient(name: ClientName, recordsHome: string, env: NodeJS.ProcessEnv = process.env, server: ServerCommand = serverCommand(env)): ChangeResult {
  const ctx = context(env);
  const def = DEFINITIONS[name];
  const status = clientStatus(name, env);
  if (!status.detected) {
    throw new UserError('conflict', `client: ${name} was not found on this machine (no ${def.cli?.binary ?? 'config folder'}); install it first`, 'client');
  }
  if (status.note) throw new UserError('conflict', status.note, 'client');
  const records = loadRecords(recordsHome);
  const command = [server.command, ...server.args];
  const previous = records.registrations[name];
  if (status.registered && previous && previous.command.join('\0') === command.join('\0')) {
    return { client: name, changed: false, message: `${name}: already registered (${status.via})` };
  }
  let registration: Registration;
  if (status.method === 'cli') {
    if (status.registered) run(status.via!, def.cli!.remove, ctx);
    const added = run(status.via!, def.cli!.add(server), ctx);
    if (added.status !== 0) throw new UserError('conflict', `${name}: \`${def.cli!.binary} ${def.cli!.add(server).join(' ')}\` failed: ${added.output}`, 'client');
    registration = { method: 'cli', cli: status.via, edit: null, command, at: new Date().toISOString() };
  } else {
    const file = def.file!(ctx)!;
    const editor = editorFor(file.format, file.path);
    const edit = applyFileEdit(file.path, (text) => editor.add(text, server), file.format === 'json' ? '{}\n' : '', previous?.edit ?? null);
    registration = { method: 'file', cli: null, edit, command, at: new Date().toISOString() };
  }
  records.registrations[name] = registration;
  saveRecords(recordsHome, records);
  return { client: name, changed: true, message: `${name}: registered (${status.via})` };
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
    changed = true;
  } else if (status.method === 'cli' && status.registered) {
    const removed = run(status.via!, def.cli!.remove, ctx);
    if (removed.status !== 0) throw new UserError('conflict', `${name}: \`${def.cli!.binary} ${def.cli!.remove.join(' ')}\` failed: ${removed.output}`, 'client');
    changed = true;
  } else if (status.method === 'file' && status.registered && status.via) {
    const file = def.file!(ctx)!;
    const editor = editorFor(file.format, file.path);
    writeKeepingMode(file.path, editor.remove(fs.readFileSync(file.path, 'utf8')));
    changed = true;
  }
  if (record) {
    delete records.registrations[name];
    saveRecords(recordsHome, records);
  }
  return { client: name, changed, message: changed ? `${name}: unregistered` : `${name}: was not registered` };
}

// ── Claude Code tool permissions (--allow-tools) ─────────────────────────────────────────

export function claudeSettingsFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(context(env).home, '.claude', 'settings.json');
}

/** Lets Claude Code call the given tools without asking (its settings' permissions.allow). */
export function allowTools(tools: string[], recordsHome: string, env: NodeJS.ProcessEnv = process.env): ChangeResult {
  const file = claudeSettingsFile(env);
  const items = tools.map((tool) => `mcp__${SERVER_NAME}__${tool}`);
  const records = loadRecords(recordsHome);
  const previous = records.allow_tools;
  let added: string[] = [];
  const edit = applyFileEdit(file, (text) => {
    added = missingArrayItems(text, file, ['permissions', 'allow'], items);
    return addArrayItems(text, file, ['permissions', 'allow'], added);
  }, '{}\n', previous);
  // only what we added: items the user had allowed before stay when this is undone
  records.allow_tools = { ...edit, items: [...new Set([...(previous?.items ?? []), ...added])] };
  saveRecords(recordsHome, records);
  return { client: 'claude-code', changed: true, message: `claude-code: ${items.length} agent-async tools allowed in ${file}` };
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


