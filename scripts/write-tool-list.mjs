// Writes dist/mcp/tool-list.json: the tools/list answer of a server with every tool, as a client
// receives it (run by `npm run build`; see lib/mcp/tool-list.ts). The server runs in-process over
// an in-memory transport on a throwaway spool; the live listing is forced, so a stale file never
// copies itself.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { createServer } from '../dist/mcp/server.js';
import { writeToolList } from '../dist/mcp/tool-list.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-async-tool-list-'));
try {
  const { mcp } = createServer({ home, tools: null, precomputedList: false });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'write-tool-list', version: '1' });
  await mcp.connect(serverSide);
  await client.connect(clientSide);
  const { tools } = await client.listTools();
  const file = writeToolList(tools);
  await client.close();
  console.log(`wrote ${path.relative(process.cwd(), file)} (${tools.length} tools)`);
} finally {
  fs.rmSync(home, { recursive: true, force: true });
}
