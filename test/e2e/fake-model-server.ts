import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SEARCH_CALL_PREFIX, nextStep, type Orchestration, type Step, type ToolResult } from './fake-orchestrator.js';

/**
 * A fake model server on 127.0.0.1 that answers the real codex, claude and gemini CLIs
 * with the wire formats they speak: OpenAI Responses SSE, Anthropic Messages SSE
 * and Gemini streamGenerateContent SSE. In `tool` mode the first main request of a turn is
 * answered with a tool call that writes fake_tool_output.txt in the cwd, the next with text.
 * With an `orchestration` set, the CLI talking to it is an orchestrator driven through
 * agent-async's tools (fake-orchestrator.ts), and a codex worker's request is answered with
 * the worker's reply once the orchestrator has seen a wait time out.
 */

export interface LoggedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: any;
}

export interface FakeModelServer {
  url: string;
  port: number;
  mode: 'ok' | 'tool';
  reply: string;
  /** The tool call's file, written relative to the cwd. */
  toolFile: string;
  requests: LoggedRequest[];
  orchestration: Orchestration | null;
  close(): Promise<void>;
}

const USAGE = { input: 42, output: 5, cached: 7, cacheCreation: 3 };

function sse(res: http.ServerResponse, events: Array<{ event?: string; data: unknown }>): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const { event, data } of events) {
    if (event) res.write(`event: ${event}\n`);
    res.write(`data: ${JSON.stringify(data)}\n\n`);
  }
  res.end();
}

// ── OpenAI Responses (codex) ──────────────────────────────────────────────────────────────

function openaiUsage() {
  return {
    input_tokens: USAGE.input,
    input_tokens_details: { cached_tokens: USAGE.cached },
    output_tokens: USAGE.output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: USAGE.input + USAGE.output,
  };
}

function responsesSse(res: http.ServerResponse, item: unknown): void {
  sse(res, [
    { event: 'response.created', data: { type: 'response.created', response: { id: 'resp_fake' } } },
    { event: 'response.output_item.done', data: { type: 'response.output_item.done', output_index: 0, item } },
    { event: 'response.completed', data: { type: 'response.completed', response: { id: 'resp_fake', usage: openaiUsage() } } },
  ]);
}

function textItem(text: string) {
  return { type: 'message', role: 'assistant', id: 'msg_fake', content: [{ type: 'output_text', text, annotations: [] }] };
}

let callCounter = 0;

/** Codex as the orchestrator: MCP tools come as `namespace` tools, and are called with the namespace named. */
function orchestrateResponses(o: Orchestration, body: any, res: http.ServerResponse): void {
  const namespaceOf = new Map<string, string>();
  const offered: string[] = [];
  for (const tool of Array.isArray(body?.tools) ? body.tools : []) {
    if (tool?.type === 'namespace') {
      for (const inner of tool.tools ?? []) {
        namespaceOf.set(inner.name, tool.name);
        offered.push(inner.name);
      }
    } else if (typeof tool?.name === 'string') offered.push(tool.name);
  }
  const results: ToolResult[] = (Array.isArray(body?.input) ? body.input : [])
    .filter((item: any) => item?.type === 'function_call_output')
    .map((item: any) => ({ id: String(item.call_id), value: item.output }));
  const step = nextStep(o, offered, results, false, []);
  callCounter += 1;
  responsesSse(res, step.kind === 'text'
    ? textItem(step.text)
    : { type: 'function_call', call_id: `call_orch_${callCounter}`, name: step.tool, ...(namespaceOf.has(step.tool) ? { namespace: namespaceOf.get(step.tool) } : {}), arguments: JSON.stringify(step.args) });
}

async function answerResponses(server: FakeModelServer, body: any, res: http.ServerResponse): Promise<void> {
  const o = server.orchestration;
  if (o && body?.model === o.orchestratorModel) {
    o.onFirstRequest?.();
    orchestrateResponses(o, body, res);
    return;
  }
  if (o) {
    // the worker: it finishes only after the orchestrator has looped on a timed-out wait
    await o.timedOut;
    responsesSse(res, textItem(o.workerReply));
    return;
  }
  const input: any[] = Array.isArray(body?.input) ? body.input : [];
  const hasToolOutput = input.some((item) => item?.type === 'function_call_output');
  responsesSse(res, server.mode === 'tool' && !hasToolOutput
    ? {
      type: 'function_call',
      call_id: 'call_fake_1',
      name: 'exec_command',
      arguments: JSON.stringify({ cmd: `echo fake-tool-ran > ${server.toolFile}` }),
    }
    : textItem(server.reply));
}

// ── Anthropic Messages (claude) ───────────────────────────────────────────────────────────

function messagesSse(res: http.ServerResponse, model: string, content: { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: unknown }): void {
  const events: Array<{ event: string; data: unknown }> = [{
    event: 'message_start',
    data: {
      type: 'message_start',
      message: {
        id: 'msg_fake', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
        usage: { input_tokens: USAGE.input, output_tokens: 1, cache_creation_input_tokens: USAGE.cacheCreation, cache_read_input_tokens: USAGE.cached },
      },
    },
  }];
  if (content.type === 'tool_use') {
    events.push(
      { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: content.id, name: content.name, input: {} } } },
      { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(content.input) } } },
      { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
      { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: USAGE.output } } },
    );
  } else {
    events.push(
      { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
      { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: content.text } } },
      { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
      { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: USAGE.output } } },
    );
  }
  events.push({ event: 'message_stop', data: { type: 'message_stop' } });
  sse(res, events);
}

/** Claude Code as the orchestrator: it may defer MCP tools behind its ToolSearch tool. */
function orchestrateMessages(o: Orchestration, body: any, tools: any[], res: http.ServerResponse, model: string): void {
  const offered = tools.map((tool) => String(tool?.name));
  const results: ToolResult[] = (Array.isArray(body?.messages) ? body.messages : [])
    .filter((message: any) => message?.role === 'user' && Array.isArray(message.content))
    .flatMap((message: any) => message.content.filter((part: any) => part?.type === 'tool_result'))
    .map((part: any) => ({ id: String(part.tool_use_id), value: part.content }));
  const deferred = [o.startTool, o.waitTool].map((tool) => `mcp__agent-async__${tool}`);
  const step: Step = nextStep(o, offered, results, offered.includes('ToolSearch'), deferred);
  callCounter += 1;
  messagesSse(res, model, step.kind === 'text'
    ? { type: 'text', text: step.text }
    : { type: 'tool_use', id: step.tool === 'ToolSearch' ? `${SEARCH_CALL_PREFIX}${callCounter}` : `toolu_orch_${callCounter}`, name: step.tool, input: step.args });
}

function answerMessages(server: FakeModelServer, body: any, res: http.ServerResponse): void {
  const messages: any[] = Array.isArray(body?.messages) ? body.messages : [];
  const tools: any[] = Array.isArray(body?.tools) ? body.tools : [];
  const model = typeof body?.model === 'string' ? body.model : 'claude-fake';
  const o = server.orchestration;
  if (o && tools.length > 0) {
    o.onFirstRequest?.();
    orchestrateMessages(o, body, tools, res, model);
    return;
  }
  if (o) {
    messagesSse(res, model, { type: 'text', text: 'A side answer.' }); // a title or another side call
    return;
  }
  const last = messages.at(-1);
  const hasToolResult = Array.isArray(last?.content) && last.content.some((part: any) => part?.type === 'tool_result');
  const mainLoop = tools.some((tool) => tool?.name === 'Bash');
  messagesSse(res, model, server.mode === 'tool' && mainLoop && !hasToolResult
    ? { type: 'tool_use', id: 'toolu_fake_1', name: 'Bash', input: { command: `echo fake-tool-ran > ${server.toolFile}`, description: 'fake tool call' } }
    : { type: 'text', text: server.reply });
}

// ── Gemini (gemini) ───────────────────────────────────────────────────────────────────────

/** A JSON value shaped like a JSON schema, for gemini's structured side calls. */
function fromSchema(schema: any): unknown {
  switch (schema?.type) {
    case 'object':
    case 'OBJECT':
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, value]) => [key, fromSchema(value)]));
    case 'array':
    case 'ARRAY':
      return [];
    case 'number':
    case 'integer':
    case 'NUMBER':
    case 'INTEGER':
      return 1;
    case 'boolean':
    case 'BOOLEAN':
      return false;
    default:
      return Array.isArray(schema?.enum) ? schema.enum[0] : 'fake';
  }
}

function geminiCandidate(parts: unknown[]) {
  return {
    candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }],
    usageMetadata: {
      promptTokenCount: USAGE.input,
      candidatesTokenCount: USAGE.output,
      totalTokenCount: USAGE.input + USAGE.output,
      cachedContentTokenCount: USAGE.cached,
    },
    modelVersion: 'gemini-fake',
  };
}

function answerGemini(server: FakeModelServer, url: string, body: any, res: http.ServerResponse): void {
  const schema = body?.generationConfig?.responseJsonSchema ?? body?.generationConfig?.responseSchema;
  if (!url.includes(':streamGenerateContent')) {
    const text = schema ? JSON.stringify(fromSchema(schema)) : server.reply;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(geminiCandidate([{ text }])));
    return;
  }
  const contents: any[] = Array.isArray(body?.contents) ? body.contents : [];
  const lastParts: any[] = contents.at(-1)?.parts ?? [];
  const hasResponse = lastParts.some((part) => part?.functionResponse);
  const declared = new Set<string>((body?.tools ?? []).flatMap((tool: any) => (tool?.functionDeclarations ?? []).map((fn: any) => fn?.name)));
  let parts: unknown[] = [{ text: server.reply }];
  const o = server.orchestration;
  if (o) {
    o.onFirstRequest?.();
    const results: ToolResult[] = contents.flatMap((content: any) => (content?.parts ?? []).filter((part: any) => part?.functionResponse))
      .map((part: any) => ({ id: String(part.functionResponse.name), value: part.functionResponse.response }));
    const step = nextStep(o, [...declared], results, false, []);
    parts = [step.kind === 'text' ? { text: step.text } : { functionCall: { name: step.tool, args: step.args } }];
  } else if (server.mode === 'tool' && !hasResponse) {
    // write_file is offered from auto_edit up; run_shell_command only in yolo
    parts = declared.has('write_file')
      ? [{ functionCall: { name: 'write_file', args: { file_path: server.toolFile, content: 'fake-tool-ran\n' } } }]
      : [{ functionCall: { name: 'run_shell_command', args: { command: `echo fake-tool-ran > ${server.toolFile}`, description: 'fake tool call' } } }];
  }
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(`data: ${JSON.stringify(geminiCandidate(parts))}\r\n\r\n`);
  res.end();
}

export async function startFakeModelServer(): Promise<FakeModelServer> {
  const state: Omit<FakeModelServer, 'url' | 'port' | 'close'> = {
    mode: 'ok',
    reply: 'Hello from the fake model.',
    toolFile: 'fake_tool_output.txt',
    requests: [],
    orchestration: null,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      const url = req.url ?? '/';
      fake.requests.push({ method: req.method ?? 'GET', url, headers: req.headers, body });
      if (req.method === 'POST' && /\/responses(\?|$)/.test(url)) return void answerResponses(fake, body, res);
      if (req.method === 'POST' && /\/v1\/messages/.test(url)) return answerMessages(fake, body, res);
      if (req.method === 'POST' && /:(stream)?[gG]enerateContent/.test(url)) return answerGemini(fake, url, body, res);
      if (req.method === 'GET' && /\/models/.test(url)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ data: [], models: [] }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"not found (fake)"}}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const fake: FakeModelServer = Object.assign(state, {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      fake.orchestration?.openGate(); // a held worker request ends
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return fake;
}
