import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolRequest,
  type CallToolResult,
  type CreateTaskResult,
  type ListToolsResult,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import { openContext, spoolHome, spoolSpaceError, type JobsContext } from '../context.js';
import { isUserError } from '../errors.js';
import { WAIT_DEFAULT_SECONDS, describeIssue } from '../inputs.js';
import { packageVersion } from '../version.js';
import { jobs, loadJobs } from './lazy-jobs.js';
import { readToolList } from './tool-list.js';
import { SpoolTaskStore, markAsTask, taskOf } from './task-store.js';
import { Session, selectTools, type ToolContext, type ToolDefinition } from './tools.js';

/**
 * `agent-async serve`: a stdio MCP server over the spool. It never runs a worker (the runner
 * does), never blocks its event loop, logs to stderr only, and exits on stdin EOF; closing
 * it never stops a job. Several run at once, one per client window, on one spool.
 */

export const SERVER_INSTRUCTIONS = `agent-async runs coding-agent CLIs (Codex, Claude Code, Gemini CLI, Cursor, custom ones) and shell commands as background jobs that survive restarts.
The loop: call a *_start tool (codex_start, claude_start, gemini_start, cursor_start, agent_start); it returns a job_id at once. Then call the matching wait tool (codex_wait, job_wait, …) with that job_id: it blocks up to ${WAIT_DEFAULT_SECONDS} s and answers status "timeout" while the job runs, so call it again until status is done, error or cancelled. Start several jobs and use job_await_any to take each result as it lands. Write each prompt so it stands alone: the worker sees nothing of this conversation.
Answers are compact: while a job runs, its status, elapsed time and one line of what the worker does (in output); when it ended, its final message in output (exec: the last lines), error, token_usage and changed files. Pass verbose: true for everything, or read the whole output with job_output. Continue a finished job's conversation with job_continue, run one again with job_retry, stop one with job_cancel.
Several agents on one repository at once: start each with isolation "worktree" (each works in its own git worktree made from what the work tree holds now, so they never touch your files or each other's); take each result with job_await_any as it lands; then read its changes (listed in the result, the patch with job_diff) and bring them back with job_apply (a conflict changes nothing and names the files), or drop them with job_discard.`;

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

function errorResult(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

export interface ServeOptions {
  home?: string;
  /** Tool names or groups to expose (overrides config mcp_tools). */
  tools?: string[] | null;
  log?: (message: string) => void;
  /** Answer tools/list from the list worked out at build time when it is current (default true). */
  precomputedList?: boolean;
}

/** Runs one tool call: the handler over lib/jobs.ts, its answer as text and structured content. */
function toolRunner(ctx: JobsContext, session: Session, log: (message: string) => void) {
  return async (tool: ToolDefinition, args: unknown, extra: Extra): Promise<CallToolResult> => {
    try {
      await loadJobs();
      jobs.refreshConfig(ctx);
      const progressToken = extra._meta?.progressToken;
      const context: ToolContext = {
        jobs: ctx,
        session,
        signal: extra.signal,
        progressEveryMs: ctx.config.progress_seconds * 1000,
        progress: progressToken === undefined ? null : async (progress, total, message) => {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total, message } });
        },
      };
      const structured = await tool.handler(args, context);
      // the text block is the same compact JSON: a client shows the model one or the other, never costlier than needed
      return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured };
    } catch (caught) {
      const error = spoolSpaceError(caught, ctx.paths.home) ?? caught;
      if (isUserError(error)) return errorResult(error.message);
      log(`${tool.name} failed: ${(error as Error).stack ?? String(error)}`);
      return errorResult(`internal error in ${tool.name}: ${(error as Error).message}`);
    }
  };
}

type ListHandler = (request: unknown, extra: Extra) => Promise<ListToolsResult>;
type CallHandler = (request: CallToolRequest, extra: Extra) => Promise<CallToolResult | CreateTaskResult>;

/**
 * McpServer (SDK 1.x) answers a plain call of a tool registered for tasks by polling the task
 * to its end, which would make a start tool block for its job's whole run. So every tool is
 * registered as a plain tool, and the handlers McpServer installs for tools/list and
 * tools/call are wrapped (as it installs them) to add what it cannot say: the start tools are
 * listed as task-capable and a task-augmented call of one answers a task at once. The call
 * wrap also names an unknown tool and words a bad argument the way every other error is.
 */
function wrapToolHandlers(server: Server, wrap: { list: (next: ListHandler) => ListHandler; call: (next: CallHandler) => CallHandler }): void {
  const install = server.setRequestHandler.bind(server) as (schema: unknown, handler: unknown) => void;
  const methodOf = (schema: unknown): unknown => (schema as { shape?: { method?: { value?: unknown } } }).shape?.method?.value;
  const replacement = (schema: unknown, handler: unknown): void => {
    const method = methodOf(schema);
    if (method === methodOf(ListToolsRequestSchema)) return install(schema, wrap.list(handler as ListHandler));
    if (method === methodOf(CallToolRequestSchema)) return install(schema, wrap.call(handler as CallHandler));
    return install(schema, handler);
  };
  server.setRequestHandler = replacement;
}

export function createServer(options: ServeOptions = {}): { mcp: McpServer; ctx: JobsContext; tools: ToolDefinition[] } {
  const ctx = openContext({ home: options.home, capPolicy: true });
  const tools = selectTools(options.tools ?? ctx.config.mcp_tools);
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const log = options.log ?? ((message: string) => process.stderr.write(`agent-async serve: ${message}\n`));
  const run = toolRunner(ctx, new Session(), log);

  const mcp = new McpServer(
    { name: 'agent-async', title: 'agent-async', version: packageVersion() },
    {
      // no `tools` here: McpServer would install its tool handlers at once, before they can be wrapped
      capabilities: { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } },
      instructions: SERVER_INSTRUCTIONS,
      taskStore: new SpoolTaskStore(ctx),
      defaultTaskPollInterval: 1000,
    },
  );

  /** A start tool called as a task: the job is queued and the task (the job) is answered at once. */
  const startAsTask = async (tool: ToolDefinition, args: unknown, ttl: number | null, extra: Extra): Promise<CallToolResult | CreateTaskResult> => {
    const result = await run(tool, args, extra);
    const jobId = result.structuredContent?.job_id;
    if (result.isError || typeof jobId !== 'string') return result;
    if (!jobs.isFleet(ctx)) markAsTask(ctx.paths, jobId, tool.name, ttl);
    const snap = await jobs.snapshotOf(ctx, jobId);
    if (snap.kind !== 'ok') return result;
    return {
      task: taskOf(snap.state, { ttl, tool: tool.name, created_at: snap.state.created_at }),
      _meta: { 'io.modelcontextprotocol/model-immediate-response': String(result.structuredContent?.message) },
    };
  };

  // the tools never change while a server runs: the list is worked out once (or read, see tool-list.ts)
  const precomputed = options.precomputedList === false ? undefined : readToolList();
  let listed: Promise<ListToolsResult> | undefined = precomputed && Promise.resolve({ tools: precomputed.filter((tool) => byName.has(tool.name)) });
  wrapToolHandlers(mcp.server, {
    list: (next) => (request, extra) => {
      listed ??= Promise.resolve(next(request, extra)).then((live) => ({
        ...live,
        tools: live.tools.map((tool) => (byName.get(tool.name)?.taskCapable ? { ...tool, execution: { taskSupport: 'optional' as const } } : tool)),
      }));
      return listed;
    },
    call: (next) => async (request, extra) => {
      const tool = byName.get(request.params.name);
      if (!tool) {
        throw new McpError(ErrorCode.InvalidParams, `tool ${JSON.stringify(request.params.name)} is not offered by this server; tools/list shows the ones that are`);
      }
      const parsed = tool.input.safeParse(request.params.arguments ?? {});
      if (!parsed.success) return errorResult(parsed.error.issues.map((issue) => describeIssue(issue, { operation: tool.name })).join('; '));
      if (request.params.task && tool.taskCapable) return startAsTask(tool, parsed.data, request.params.task.ttl ?? null, extra);
      return next(request, extra);
    },
  });

  for (const tool of tools) {
    mcp.registerTool(
      tool.name,
      { title: tool.title, description: tool.description, inputSchema: tool.input, outputSchema: tool.output, annotations: { title: tool.title, ...tool.annotations } },
      (args: unknown, extra: Extra) => run(tool, args, extra),
    );
  }
  return { mcp, ctx, tools };
}

/**
 * `agent-async serve` launched without the CLI (bin/agent-async.js's fast path): the same
 * server, with a user error (a bad config, a spool that cannot be created) said and turned
 * into the CLI's exit code.
 */
export async function serveMain(args: { tools: string[] | null; home: string | undefined }): Promise<void> {
  if (args.home !== undefined) process.env.AGENT_ASYNC_HOME = args.home;
  try {
    await serveStdio({ tools: args.tools, home: args.home });
  } catch (caught) {
    const error = spoolSpaceError(caught, spoolHome()) ?? caught;
    if (!isUserError(error)) throw error;
    process.stderr.write(`agent-async: ${error.message}\n`);
    const { exitForUserError } = await import('../cli/exit-codes.js');
    process.exitCode = exitForUserError(error.code);
  }
}

/** Serves over stdio until stdin ends (the client went away); jobs keep running. */
export async function serveStdio(options: ServeOptions = {}): Promise<void> {
  const { mcp } = createServer(options);
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    void mcp.close().finally(() => process.exit(0));
  };
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, shutdown);
  mcp.server.onclose = shutdown;
  await mcp.connect(transport);
}
