import crypto from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';

/**
 * The `tools/list` answer for every tool, worked out at build time (`npm run build` runs
 * scripts/write-tool-list.mjs), so a server's first `tools/list` costs a file read instead of
 * converting 40-odd zod schemas to JSON Schema while the client waits. The file carries a stamp
 * of what its content depends on (the built tool definitions and schemas, the SDK and zod); a
 * server that finds it missing or stale lists the tools live, as the SDK converts them.
 */

const TOOL_LIST_FILE = fileURLToPath(new URL('./tool-list.json', import.meta.url));
const SOURCES = ['./tools.js', '../inputs.js', '../config.js', '../spool/state.js'].map((relative) => new URL(relative, import.meta.url));
const PACKAGES = ['@modelcontextprotocol/sdk/server/mcp.js', 'zod'];

interface ToolListFile {
  stamp: string;
  tools: Tool[];
}

/** What the list depends on: the built sources' bytes and the SDK's and zod's files. */
export function toolListStamp(): string {
  const hash = crypto.createHash('sha256');
  for (const source of SOURCES) hash.update(fs.readFileSync(source));
  for (const name of PACKAGES) {
    const stat = fs.statSync(fileURLToPath(import.meta.resolve(name)));
    hash.update(`${name} ${stat.size} ${stat.mtimeMs}`);
  }
  return hash.digest('hex');
}

/** The precomputed list when it is current; undefined when it is missing, unreadable or stale. */
export function readToolList(): Tool[] | undefined {
  try {
    const file = JSON.parse(fs.readFileSync(TOOL_LIST_FILE, 'utf8')) as ToolListFile;
    return file.stamp === toolListStamp() && Array.isArray(file.tools) ? file.tools : undefined;
  } catch {
    return undefined;
  }
}

export function writeToolList(tools: Tool[]): string {
  const file: ToolListFile = { stamp: toolListStamp(), tools };
  fs.writeFileSync(TOOL_LIST_FILE, `${JSON.stringify(file)}\n`);
  return TOOL_LIST_FILE;
}
