import type { BuiltinAgentConfig, Policy } from '../config.js';
import { assistantActivity, toolCall } from './activity.js';
import { agentAdapter } from './judge.js';
import {
  asCount, asObject, asString, assistantText, emptyParse, jsonLine, keepNote, promptDelivery,
  type AgentAdapter, type StreamParser,
} from './types.js';

/** Cursor's `cursor-agent -p --output-format stream-json --trust` (from its docs; unverified here). */
const MODE_ARGS: Record<Policy, string[]> = {
  suggest: ['--mode', 'ask'],
  'auto-edit': [],
  'full-auto': ['--force'],
};

function parser(): StreamParser {
  const parsed = emptyParse();
  let lastAssistantText: string | null = null;
  return {
    line(text, stream) {
      const event = jsonLine(text);
      if (!event) {
        if (text.trim() !== '') keepNote(parsed.notes, text.trim());
        return;
      }
      if (stream === 'stderr') return; // stderr may mirror the stdout events
      parsed.session_id = asString(event.session_id) ?? parsed.session_id;
      if (event.type === 'assistant') {
        lastAssistantText = assistantText(event) ?? lastAssistantText;
      } else if (event.type === 'result') {
        const usage = asObject(event.usage);
        if (Object.keys(usage).length > 0) {
          parsed.usage = {
            input_tokens: asCount(usage.input_tokens ?? usage.inputTokens),
            output_tokens: asCount(usage.output_tokens ?? usage.outputTokens),
            cached_input_tokens: asCount(usage.cache_read_input_tokens ?? usage.cacheReadTokens),
            cost_usd: null,
          };
        }
        if (event.is_error === true || (typeof event.subtype === 'string' && event.subtype !== 'success')) {
          parsed.failure = asString(event.result) ?? `ended with ${String(event.subtype)}`;
        } else {
          parsed.completed = true;
          parsed.final_message = asString(event.result) ?? lastAssistantText;
        }
      }
    },
    result: () => parsed,
  };
}

/** cursor-agent stream-json: a tool call it started (shellToolCall, readToolCall, …), or what it says. */
export function cursorActivity(line: string): string | null {
  const event = jsonLine(line);
  if (!event) return null;
  if (event.type === 'assistant') return assistantActivity(event);
  if (event.type !== 'tool_call' || event.subtype !== 'started') return null;
  const [kind, call] = Object.entries(asObject(event.tool_call))[0] ?? [];
  return kind ? toolCall(kind.replace(/ToolCall$/, ''), asObject(call).args) : null;
}

export function cursorAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'cursor',
    binary: settings.binary ?? 'cursor-agent',
    installHint: 'curl https://cursor.com/install -fsS | bash',
    loginHint: 'run `cursor-agent login`, or set CURSOR_API_KEY',
    activity: cursorActivity,
  };
  return agentAdapter(subject, "Cursor's cursor-agent (-p --output-format stream-json)", (input) => {
    const { request } = input;
    const { viaStdin, stdin } = promptDelivery(input);
    const argv = [subject.binary, '-p', '--output-format', 'stream-json', '--trust', '--workspace', request.cwd];
    argv.push(...MODE_ARGS[request.policy as Policy]);
    if (request.model) argv.push('--model', request.model);
    if (request.resume_session) argv.push('--resume', request.resume_session);
    argv.push(...settings.extra_args);
    if (!viaStdin) argv.push('--', input.prompt);
    return { argv, stdin, env: { ...settings.env } };
  }, parser);
}
