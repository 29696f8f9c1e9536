import { parse } from 'smol-toml';
import { MalformedConfig } from './json-edit.js';

/**
 * Editing Codex's config.toml as text: our server is one `[mcp_servers.<name>]` table appended
 * at the end, so the user's comments, order and formatting stay as they are. smol-toml checks
 * the file before and after: a file that does not parse is reported and left alone, and an
 * edit that would change anything else is refused.
 */

function parseToml(text: string, file: string): Record<string, unknown> {
  try {
    return parse(text);
  } catch (error) {
    throw new MalformedConfig(file, `not valid TOML (${(error as Error).message.split('\n')[0] ?? 'parse error'})`);
  }
}

function tableHeader(key: string): RegExp {
  const escaped = key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return new RegExp(`^\\s*\\[\\s*mcp_servers\\s*\\.\\s*(?:${escaped}|"${escaped}")\\s*\\]\\s*(#.*)?$`);
}

function withoutServer(config: Record<string, unknown>, key: string): Record<string, unknown> {
  const servers = { ...(config.mcp_servers as Record<string, unknown> | undefined) };
  delete servers[key];
  const rest = { ...config };
  if (Object.keys(servers).length === 0) delete rest.mcp_servers;
  else rest.mcp_servers = servers;
  return rest;
}

function sameData(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, (_k, v: unknown) => (v instanceof Date ? v.toISOString() : v)) === JSON.stringify(b, (_k, v: unknown) => (v instanceof Date ? v.toISOString() : v));
}

export function hasServer(text: string, file: string, key: string): boolean {
  const servers = parseToml(text, file).mcp_servers as Record<string, unknown> | undefined;
  return servers !== undefined && key in servers;
}

export function readServer(text: string, file: string, key: string): unknown {
  const servers = parseToml(text, file).mcp_servers as Record<string, unknown> | undefined;
  return servers?.[key];
}

export function addServer(text: string, file: string, key: string, command: string, args: string[]): string {
  const before = parseToml(text, file);
  const block = [`[mcp_servers.${key}]`, `command = ${JSON.stringify(command)}`, `args = [${args.map((a) => JSON.stringify(a)).join(', ')}]`].join('\n');
  const separator = text === '' ? '' : text.endsWith('\n\n') ? '' : text.endsWith('\n') ? '\n' : '\n\n';
  const result = `${text}${separator}${block}\n`;
  const after = parseToml(result, file);
  if (!sameData(withoutServer(after, key), withoutServer(before, key)) || !sameData(readServer(result, file, key), { command, args })) {
    throw new MalformedConfig(file, `adding [mcp_servers.${key}] at the end would change other settings (is mcp_servers written inline?)`);
  }
  return result;
}

/** Removes our `[mcp_servers.<key>]` table (to the next table or the end) and its leading blank line. */
export function removeServer(text: string, file: string, key: string): string {
  const before = parseToml(text, file);
  const lines = text.split('\n');
  const header = tableHeader(key);
  const start = lines.findIndex((line) => header.test(line));
  if (start === -1) return text;
  let end = start + 1;
  while (end < lines.length && !/^\s*\[/.test(lines[end]!)) end += 1;
  // keep comments that belong to the next table
  while (end > start + 1 && /^\s*#/.test(lines[end - 1]!)) end -= 1;
  let from = start;
  if (from > 0 && lines[from - 1]!.trim() === '') from -= 1;
  const kept = [...lines.slice(0, from), ...lines.slice(end)];
  let result = kept.join('\n');
  if (result !== '' && !result.endsWith('\n') && text.endsWith('\n')) result += '\n';
  if (result.trim() === '') result = '';
  if (!sameData(parseToml(result, file), withoutServer(before, key))) {
    throw new MalformedConfig(file, `removing [mcp_servers.${key}] would change other settings; remove it by hand`);
  }
  return result;
}
