import { parse } from 'smol-toml';
import { MalformedConfig } from './json-edit.js';

/**
 * Editing Codex's config.toml as text: our server is one `[mcp_servers.<name>]` table appended
 * at the end (nested settings as dotted keys inside it, so it stays one block), and the user's
 * comments, order and formatting stay as they are. smol-toml checks the file before and after:
 * a file that does not parse is reported and left alone, and an edit that would change
 * anything else is refused.
 */

/** A TOML value as we write it: strings, numbers, booleans, lists of strings, tables of those. */
export type TomlValue = string | number | boolean | string[] | { [key: string]: TomlValue };
export type TomlTable = Record<string, TomlValue>;

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

/** JSON with object keys sorted, so two parses compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (inner instanceof Date) return inner.toISOString();
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) {
      return Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return inner;
  });
}

function sameData(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

function isTable(value: TomlValue): value is { [key: string]: TomlValue } {
  return typeof value === 'object' && !Array.isArray(value);
}

function inlineValue(value: TomlValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item) => JSON.stringify(item)).join(', ')}]`;
  if (isTable(value)) return `{ ${Object.entries(value).map(([key, inner]) => `${tomlKey(key)} = ${inlineValue(inner)}`).join(', ')} }`;
  return String(value);
}

/** `key = value` lines; a table of tables becomes dotted keys all the way down (`tools.x.approval_mode = …`), a flat one an inline table. */
function tableLines(table: TomlTable, prefix = ''): string[] {
  return Object.entries(table).flatMap(([key, value]) => {
    const dotted = `${prefix}${tomlKey(key)}`;
    if (isTable(value) && (prefix !== '' || Object.values(value).some((inner) => isTable(inner)))) return tableLines(value, `${dotted}.`);
    return [`${dotted} = ${inlineValue(value)}`];
  });
}

export function hasServer(text: string, file: string, key: string): boolean {
  const servers = parseToml(text, file).mcp_servers as Record<string, unknown> | undefined;
  return servers !== undefined && key in servers;
}

export function readServer(text: string, file: string, key: string): unknown {
  const servers = parseToml(text, file).mcp_servers as Record<string, unknown> | undefined;
  return servers?.[key];
}

export function addServer(text: string, file: string, key: string, entry: TomlTable): string {
  const before = parseToml(text, file);
  const block = [`[mcp_servers.${tomlKey(key)}]`, ...tableLines(entry)].join('\n');
  const separator = text === '' ? '' : text.endsWith('\n\n') ? '' : text.endsWith('\n') ? '\n' : '\n\n';
  const result = `${text}${separator}${block}\n`;
  const after = parseToml(result, file);
  if (!sameData(withoutServer(after, key), withoutServer(before, key)) || !sameData(readServer(result, file, key), entry)) {
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
