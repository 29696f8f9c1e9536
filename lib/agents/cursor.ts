import type { BuiltinAgentConfig, Policy } from '../config.js';
import { judgeRun } from './judge.js';
import {
  asCount, asObject, asString, emptyParse, jsonLine, keepNote, promptDelivery,
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
        const content = asObject(event.message).content;
        const texts = Array.isArray(content)
          ? content.map(asObject).filter((part) => part.type === 'text').map((part) => asString(part.text) ?? '')
          : [];
        if (texts.length > 0) lastAssistantText = texts.join('');
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

export function cursorAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'cursor',
    binary: settings.binary ?? 'cursor-agent',
    installHint: 'curl https://cursor.com/install -fsS | bash',
    loginHint: 'run `cursor-agent login`, or set CURSOR_API_KEY',
  };
  return {
    ...subject,
    description: "Cursor's cursor-agent (-p --output-format stream-json)",
    takesPrompt: true,
    buildInvocation(input) {
      const { request } = input;
      const { viaStdin, stdin } = promptDelivery(input);
      const argv = [subject.binary, '-p', '--output-format', 'stream-json', '--trust', '--workspace', request.cwd];
      argv.push(...MODE_ARGS[request.policy as Policy]);
      if (request.model) argv.push('--model', request.model);
      if (request.resume_session) argv.push('--resume', request.resume_session);
      argv.push(...settings.extra_args);
      if (!viaStdin) argv.push('--', input.prompt);
      return { argv, stdin, env: { ...settings.env } };
    },
    createParser: parser,
    judge: (parsed, exitCode, signal) => judgeRun(subject, parsed, exitCode, signal),
  };
}
