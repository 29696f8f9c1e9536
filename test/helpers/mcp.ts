import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { expect } from 'vitest';
import { CLI, ROOT, makeSpool, type TestSpool } from './spool.js';

/** A real `agent-async serve` process driven over stdio by the SDK's own Client. */
export interface McpHandle {
  client: Client;
  transport: StdioClientTransport;
  stderr: () => string;
  close(): Promise<void>;
}

export async function connect(spool: TestSpool, args: string[] = []): Promise<McpHandle> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'serve', ...args],
    env: spool.env as Record<string, string>,
    cwd: spool.work,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: 'agent-async-tests', version: '1.0.0' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport, stderr: () => stderr, close: () => client.close() };
}

export async function call(handle: McpHandle, name: string, args: Record<string, unknown> = {}, options: Parameters<Client['callTool']>[2] = {}): Promise<CallToolResult> {
  return (await handle.client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
}

/** The structured answer of a successful call (fails the test with the error text otherwise). */
export async function ok(handle: McpHandle, name: string, args: Record<string, unknown> = {}, options: Parameters<Client['callTool']>[2] = {}): Promise<any> {
  const result = await call(handle, name, args, options);
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  expect(JSON.parse((result.content[0] as { text: string }).text)).toEqual(result.structuredContent);
  return result.structuredContent;
}

export function errorText(result: CallToolResult): string {
  expect(result.isError).toBe(true);
  return (result.content[0] as { text: string }).text;
}

/** A spool whose PATH has the stub agent CLIs (test/stubs) that replay recorded transcripts. */
export function stubbedSpool(config: Record<string, unknown> = {}): TestSpool {
  const spool = makeSpool(config);
  const bin = path.join(spool.work, 'bin');
  fs.mkdirSync(bin);
  for (const name of ['codex', 'claude', 'gemini', 'cursor-agent']) fs.symlinkSync(path.join(ROOT, 'test/stubs/agent-stub.mjs'), path.join(bin, name));
  spool.env.PATH = `${bin}:${spool.env.PATH}`;
  return spool;
}
