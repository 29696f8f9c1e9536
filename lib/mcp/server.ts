import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type CreateTaskResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { isUserError } from '../errors.js';
import * as jobs from '../jobs.js';
import { readState } from '../spool/store.js';
import { packageVersion } from '../version.js';
import { SpoolTaskStore, markAsTask, taskOf } from './task-store.js';
import { Session, selectTools, type ToolContext, type ToolDefinition } from './tools.js';

/**
 * `agent-async serve`: a stdio MCP server over the spool. It never runs a worker (the runner
 * does), never blocks its event loop, logs to stderr only, and exits on stdin EOF; closing
 * it never stops a job. Several run at once, one per client window, on one spool.
 */

export const SERVER_INSTRUCTIONS = `agent-async runs coding-agent CLIs (Codex, Claude Code, Gemini CLI, Cursor, custom ones) and shell commands as background jobs that survive restarts.
The loop: call a *_start tool (codex_start, claude_start, gemini_start, cursor_start, agent_start); it returns a job_id at once. Then call the matching wait tool (codex_wait, job_wait, …) with that job_id: it blocks up to 50 s and answers status "timeout" while the job runs, so call it again until status is done, error or cancelled. Start several jobs and use job_await_any to take each result as it lands. Write each prompt so it stands alone: the worker sees nothing of this conversation. Read long output with job_output; continue a finished job's conversation with job_continue; stop one with job_cancel.`;

function describeZodIssue(issue: z.core.$ZodIssue, toolName: string): string {
  const field = issue.path.length > 0 ? issue.path.join('.') : '(arguments)';
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return `${field}: is required (${issue.expected}) for ${toolName}`;
  }
  if (issue.code === 'unrecognized_keys') {
    return `${issue.keys.join(', ')}: not a parameter of ${toolName}`;
  }
  return `${field}: ${issue.message}`;
}

function toolListing(tool: ToolDefinition): Tool {
  const listed: Tool = {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: z.toJSONSchema(tool.input, { io: 'input', target: 'draft-2020-12' }) as Tool['inputSchema'],
    outputSchema: z.toJSONSchema(tool.output, { io: 'output', target: 'draft-2020-12' }) as Tool['outputSchema'],
    annotations: { title: tool.title, ...tool.annotations },
  };
  if (tool.taskCapable) listed.execution = { taskSupport: 'optional' };
  return listed;
}

function errorResult(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

export interface ServeOptions {
  home?: string;
  /** Tool names or groups to expose (overrides config mcp_tools). */
  tools?: string[] | null;
  log?: (message: string) => void;
}

export function createServer(options: ServeOptions = {}): { server: Server; spool: jobs.Spool; tools: ToolDefinition[] } {
  const spool = jobs.openSpool({ home: options.home });
  const tools = selectTools(options.tools ?? spool.config.mcp_tools);
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  // built once: a fresh `.strict()` per call made zod compile its parser again on every call
  const strictInputs = new Map(tools.map((tool) => [tool.name, tool.input.strict()]));
  const session = new Session();
  const log = options.log ?? ((message: string) => process.stderr.write(`agent-async serve: ${message}\n`));
  const taskStore = new SpoolTaskStore(spool);

  const server = new Server(
    { name: 'agent-async', title: 'agent-async', version: packageVersion() },
    {
      capabilities: {
        tools: {},
        tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
      },
      instructions: SERVER_INSTRUCTIONS,
      taskStore,
      defaultTaskPollInterval: 1000,
    },
  );

  const listing = tools.map(toolListing);
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: listing }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult | CreateTaskResult> => {
    const tool = byName.get(request.params.name);
    if (!tool) {
      throw new McpError(ErrorCode.InvalidParams, `tool ${JSON.stringify(request.params.name)} is not offered by this server; tools/list shows the ones that are`);
    }
    const parsed = strictInputs.get(tool.name)!.safeParse(request.params.arguments ?? {});
    if (!parsed.success) {
      return errorResult(parsed.error.issues.map((issue) => describeZodIssue(issue, tool.name)).join('; '));
    }
    try {
      jobs.refreshConfig(spool);
      const progressToken = extra._meta?.progressToken;
      const context: ToolContext = {
        spool,
        session,
        signal: extra.signal,
        progressEveryMs: spool.config.progress_seconds * 1000,
        progress: progressToken === undefined ? null : async (progress, total, message) => {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total, message } });
        },
      };
      const structured = await tool.handler(parsed.data, context);
      if (request.params.task && tool.taskCapable && typeof structured.job_id === 'string') {
        markAsTask(spool.paths, structured.job_id, tool.name, request.params.task.ttl ?? null);
        const read = readState(spool.paths, structured.job_id);
        if (read.kind === 'ok') {
          return {
            task: taskOf(read.state, { ttl: request.params.task.ttl ?? null, tool: tool.name, created_at: read.state.created_at }),
            _meta: { 'io.modelcontextprotocol/model-immediate-response': String(structured.message) },
          };
        }
      }
      return { content: [{ type: 'text', text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
    } catch (caught) {
      const error = jobs.spoolSpaceError(caught, spool.paths.home) ?? caught;
      if (isUserError(error)) return errorResult(error.message);
      log(`${tool.name} failed: ${(error as Error).stack ?? String(error)}`);
      return errorResult(`internal error in ${tool.name}: ${(error as Error).message}`);
    }
  });

  return { server, spool, tools };
}

/** Serves over stdio until stdin ends (the client went away); jobs keep running. */
export async function serveStdio(options: ServeOptions = {}): Promise<void> {
  const { server } = createServer(options);
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    void server.close().finally(() => process.exit(0));
  };
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, shutdown);
  server.onclose = shutdown;
  await server.connect(transport);
}
