import type { BuiltinAgentConfig, Policy } from '../config.js';
import { toolCall } from './activity.js';
import { agentAdapter } from './judge.js';
import {
  asCount, asObject, asString, emptyParse, jsonLine, keepNote, promptDelivery,
  type AgentAdapter, type ParsedStream, type StreamParser,
} from './types.js';

/** Gemini CLI 0.61: `gemini -o stream-json --prompt=…`; recorded streams in test/fixtures/transcripts/gemini_*. */
const APPROVAL_MODE: Record<Policy, string> = {
  suggest: 'plan',
  'auto-edit': 'auto_edit',
  'full-auto': 'yolo',
};

const DOCUMENT_MAX = 1024 * 1024;

/**
 * `-o json` (e.g. through extra_args) prints one pretty-printed object instead of events:
 * on stdout when it worked, on stderr when it failed. Read it back from the lines kept.
 */
function applyJsonDocument(parsed: ParsedStream, lines: string[]): void {
  const start = lines.lastIndexOf('{');
  if (start === -1) return;
  let document: Record<string, unknown>;
  try {
    document = asObject(JSON.parse(lines.slice(start).join('\n')));
  } catch {
    return;
  }
  parsed.session_id ??= asString(document.session_id);
  if (document.error) {
    parsed.failure ??= asString(asObject(document.error).message) ?? 'gemini reported an error';
    return;
  }
  if (typeof document.response !== 'string') return;
  parsed.final_message = document.response;
  parsed.completed = true;
  const totals = { prompt: 0, candidates: 0, cached: 0 };
  for (const model of Object.values(asObject(asObject(document.stats).models))) {
    const tokens = asObject(asObject(model).tokens);
    totals.prompt += asCount(tokens.prompt) ?? 0;
    totals.candidates += asCount(tokens.candidates) ?? 0;
    totals.cached += asCount(tokens.cached) ?? 0;
  }
  parsed.usage = { input_tokens: totals.prompt, output_tokens: totals.candidates, cached_input_tokens: totals.cached, cost_usd: null };
}

function parser(): StreamParser {
  const parsed = emptyParse();
  let answer = '';
  let sawEvents = false;
  const raw: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
  const rawBytes = { stdout: 0, stderr: 0 };
  return {
    line(text, stream) {
      if (!sawEvents && rawBytes[stream] < DOCUMENT_MAX) {
        raw[stream].push(text);
        rawBytes[stream] += text.length;
      }
      const event = jsonLine(text);
      if (!event) {
        if (stream === 'stderr' && text.trim() !== '' && !text.startsWith(' ') && text !== '{' && text !== '}') keepNote(parsed.notes, text.trim());
        return;
      }
      sawEvents = true;
      switch (event.type) {
        case 'init':
          parsed.session_id = asString(event.session_id) ?? parsed.session_id;
          break;
        case 'message':
          if (event.role === 'assistant' && typeof event.content === 'string') answer += event.content;
          break;
        case 'tool_use':
        case 'tool_result':
          // the answer is what the model says after its last tool call
          answer = '';
          break;
        case 'error':
          if (typeof event.message === 'string') keepNote(parsed.notes, event.message);
          break;
        case 'result': {
          const stats = asObject(event.stats);
          parsed.usage = {
            input_tokens: asCount(stats.input_tokens),
            output_tokens: asCount(stats.output_tokens),
            cached_input_tokens: asCount(stats.cached),
            cost_usd: null,
          };
          if (event.status === 'success') parsed.completed = true;
          else parsed.failure = asString(asObject(event.error).message) ?? `ended with status ${String(event.status)}`;
          break;
        }
        default:
          // json mode prints the error object on stderr: {"session_id", "error": {message}}
          if (event.error) parsed.failure ??= asString(asObject(event.error).message);
      }
      if (answer !== '') parsed.final_message = answer;
    },
    result: () => {
      if (!sawEvents) {
        applyJsonDocument(parsed, raw.stdout);
        applyJsonDocument(parsed, raw.stderr);
      }
      return parsed;
    },
  };
}

/** gemini stream-json: the tool it calls, or that it is writing its answer. */
export function geminiActivity(line: string): string | null {
  const event = jsonLine(line);
  if (!event) return null;
  if (event.type === 'init') return 'starting';
  if (event.type === 'tool_use') return toolCall(asString(event.tool_name) ?? 'tool', event.parameters);
  if (event.type === 'message' && event.role === 'assistant') return 'writing its answer';
  return null;
}

export function geminiAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'gemini',
    binary: settings.binary ?? 'gemini',
    installHint: 'npm install -g @google/gemini-cli',
    loginHint: 'set GEMINI_API_KEY, or run `gemini` once and log in',
    activity: geminiActivity,
  };
  return agentAdapter(subject, 'Google Gemini CLI (gemini -o stream-json)', (input) => {
    const { request } = input;
    const { viaStdin, stdin } = promptDelivery(input);
    const argv = [subject.binary, '-o', 'stream-json', '--approval-mode', APPROVAL_MODE[request.policy as Policy]];
    if (request.model) argv.push('-m', request.model);
    if (request.resume_session) argv.push('--resume', request.resume_session);
    argv.push(...settings.extra_args);
    // yargs in gemini rejects `-p "-x"`; the = form keeps a dash-leading prompt intact
    if (!viaStdin) argv.push(`--prompt=${input.prompt}`);
    return {
      argv,
      stdin,
      env: {
        // no self-relaunch (its parent ignores SIGTERM), and no trust prompt in headless mode
        GEMINI_CLI_NO_RELAUNCH: 'true',
        GEMINI_CLI_TRUST_WORKSPACE: 'true',
        ...settings.env,
      },
    };
  }, parser);
}
