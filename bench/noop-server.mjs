// An MCP server over stdio with one tool that does nothing, built with the same SDK as
// agent-async: what any MCP round trip costs before a tool does its work.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'noop', version: '1' });
const input = { agent: z.string(), argv: z.array(z.string()).optional(), cwd: z.string().optional() };
const output = { job_id: z.string(), status: z.string() };
server.registerTool('noop', { inputSchema: input, outputSchema: output }, async () => {
  const answer = { job_id: 'none', status: 'pending' };
  return { content: [{ type: 'text', text: JSON.stringify(answer) }], structuredContent: answer };
});
await server.connect(new StdioServerTransport());
