/**
 * The scripted model behind a real CLI used as the orchestrator: it calls the start tool, then
 * the wait tool again and again while the answer is `timeout`, then says how the job ended.
 * Each step is derived from the conversation the CLI sends, whatever its wire format; the
 * format layer (fake-model-server.ts) only says which tools are offered and what the tool
 * results were, and encodes the step.
 */

export interface Script {
  startTool: string;
  waitTool: string;
  startArgs: Record<string, unknown>;
  waitSeconds: number;
  /** The model name the orchestrating CLI asks for (codex: tells its requests from the worker's). */
  orchestratorModel: string;
  /** The worker's final message; the worker's request is held until a wait answered `timeout`. */
  workerReply: string;
  /** Called on the first main-loop request of the orchestrator. */
  onFirstRequest?: () => void;
}

export interface Orchestration extends Script {
  /** Every answer of ours the orchestrator received, in order (start, timeouts, the end). */
  answers: Answer[];
  /** Every step the scripted model took, for the failure message. */
  steps: Step[];
  sawTimeout: boolean;
  /** Resolves when the orchestrator has received a `timeout` answer (or openGate is called). */
  timedOut: Promise<void>;
  openGate(): void;
}

export function orchestration(script: Script): Orchestration {
  let open = (): void => undefined;
  const timedOut = new Promise<void>((resolve) => (open = resolve));
  return { ...script, answers: [], steps: [], sawTimeout: false, timedOut, openGate: () => open() };
}

export interface Answer {
  job_id: string;
  status: string;
  /** The final message (compact answers carry it in the seed's `output`). */
  output?: string | null;
  [key: string]: unknown;
}

/** A tool result as the orchestrator sent it back: the id of our call (or the tool name), and its content. */
export interface ToolResult {
  id: string;
  value: unknown;
}

export type Step =
  | { kind: 'call'; tool: string; args: Record<string, unknown> }
  | { kind: 'text'; text: string };

export const SEARCH_CALL_PREFIX = 'toolu_search_';

/** Our answer (an object with job_id and status) somewhere in a tool result: structured, or JSON in text. */
export function findAnswer(value: unknown): Answer | null {
  if (typeof value === 'string') {
    const start = value.indexOf('{');
    const end = value.lastIndexOf('}');
    if (start === -1 || end < start) return null;
    try {
      return findAnswer(JSON.parse(value.slice(start, end + 1)));
    } catch {
      return null;
    }
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findAnswer(item);
      if (found) return found;
    }
    return null;
  }
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record.status === 'string' && typeof record.job_id === 'string') return record as Answer;
    for (const inner of Object.values(record)) {
      const found = findAnswer(inner);
      if (found) return found;
    }
  }
  return null;
}

function describe(value: unknown): string {
  return (typeof value === 'string' ? value : JSON.stringify(value)).slice(0, 400);
}

/**
 * The next step. `offered` are the tool names as the model sees them (the start tool is found
 * by its suffix); `canSearch` when the client defers MCP tools behind a search tool (Claude
 * Code's ToolSearch), `deferredNames` the names to select with it.
 */
export function nextStep(o: Orchestration, offered: string[], results: ToolResult[], canSearch: boolean, deferredNames: string[]): Step {
  const start = offered.find((name) => name.endsWith(o.startTool));
  const wait = offered.find((name) => name.endsWith(o.waitTool));
  const last = results.at(-1);
  const answer = last ? findAnswer(last.value) : null;
  let step: Step;
  if (!last || (last.id.startsWith(SEARCH_CALL_PREFIX) && !answer)) {
    if (start) step = { kind: 'call', tool: start, args: o.startArgs };
    else if (canSearch && !results.some((result) => result.id.startsWith(SEARCH_CALL_PREFIX))) step = { kind: 'call', tool: 'ToolSearch', args: { query: `select:${deferredNames.join(',')}` } };
    else step = { kind: 'text', text: `orchestrator: ${o.startTool} was not offered (tools: ${offered.join(', ')})` };
  } else if (!answer) {
    step = { kind: 'text', text: `orchestrator: the last tool call failed: ${describe(last.value)}` };
  } else {
    o.answers.push(answer);
    if (answer.status === 'timeout') {
      o.sawTimeout = true;
      o.openGate();
    }
    if (['done', 'error', 'cancelled'].includes(answer.status)) {
      step = { kind: 'text', text: `orchestrator: job ${answer.job_id} ended ${answer.status}: ${String(answer.output ?? '')}` };
    } else if (!wait) {
      step = { kind: 'text', text: `orchestrator: ${o.waitTool} was not offered` };
    } else {
      step = { kind: 'call', tool: wait, args: { job_id: answer.job_id, timeout_seconds: o.waitSeconds } };
    }
  }
  o.steps.push(step);
  return step;
}
