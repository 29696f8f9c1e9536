import type { BuiltinAgentConfig, Policy } from '../config.js';
import { assistantActivity } from './activity.js';
import { agentAdapter } from './judge.js';
import {
  asCount, asObject, asString, assistantText, emptyParse, eventOf, jsonLine, keepNote, promptDelivery,
  type AgentAdapter, type StreamParser,
} from './types.js';

/** Claude Code 2.1.197: `claude -p --output-format stream-json --verbose`; recorded streams in test/fixtures/transcripts/claude_*. */
const PERMISSION_MODE: Record<Policy, string> = {
  suggest: 'plan',
  'auto-edit': 'acceptEdits',
  'full-auto': 'bypassPermissions',
};

function parser(): StreamParser {
  const parsed = emptyParse();
  let lastAssistantText: string | null = null;
  return {
    line(text, stream) {
      const event = eventOf(text, stream, parsed.notes);
      if (!event) return;
      parsed.session_id = asString(event.session_id) ?? parsed.session_id;
      if (event.type === 'assistant') {
        lastAssistantText = assistantText(event) ?? lastAssistantText;
      } else if (event.type === 'system' && event.subtype === 'api_retry') {
        keepNote(parsed.notes, `API retry ${JSON.stringify(event.attempt)}: ${JSON.stringify(event.error_status ?? event.error ?? null)}`);
      } else if (event.type === 'result') {
        const usage = asObject(event.usage);
        const fresh = asCount(usage.input_tokens);
        const created = asCount(usage.cache_creation_input_tokens) ?? 0;
        const read = asCount(usage.cache_read_input_tokens) ?? 0;
        parsed.usage = {
          // all prompt tokens, cached ones included (as codex and gemini count them)
          input_tokens: fresh === null ? null : fresh + created + read,
          output_tokens: asCount(usage.output_tokens),
          cached_input_tokens: read,
          cost_usd: typeof event.total_cost_usd === 'number' ? event.total_cost_usd : null,
        };
        const resultText = asString(event.result);
        if (event.is_error === true) {
          const errors = Array.isArray(event.errors) ? event.errors.filter((e) => typeof e === 'string').join('; ') : '';
          parsed.failure = resultText ?? (errors || `ended with ${String(event.subtype)}`);
        } else {
          parsed.completed = true;
          parsed.final_message = resultText ?? lastAssistantText;
        }
      }
    },
    result: () => parsed,
  };
}

/** claude stream-json: the assistant's last tool call, or what it says. */
export function claudeActivity(line: string): string | null {
  const event = jsonLine(line);
  if (event?.type === 'system' && event.subtype === 'init') return 'starting';
  return event?.type === 'assistant' ? assistantActivity(event) : null;
}

export function claudeAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'claude',
    binary: settings.binary ?? 'claude',
    installHint: 'npm install -g @anthropic-ai/claude-code',
    loginHint: 'run `claude` once and log in, or set ANTHROPIC_API_KEY',
    activity: claudeActivity,
  };
  return agentAdapter(subject, 'Claude Code (claude -p --output-format stream-json)', (input) => {
    const { request } = input;
    const policy = request.policy as Policy;
    const { viaStdin, stdin } = promptDelivery(input);
    const argv = [subject.binary, '-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', PERMISSION_MODE[policy]];
    if (request.model) argv.push('--model', request.model);
    if (request.resume_session) argv.push('--resume', request.resume_session);
    argv.push(...settings.extra_args);
    if (!viaStdin) argv.push('--', input.prompt);
    const env: Record<string, string> = { ...settings.env };
    // Claude refuses bypassPermissions as root unless told it runs in a sandbox.
    if (policy === 'full-auto' && process.getuid?.() === 0) env.IS_SANDBOX = '1';
    return { argv, stdin, env };
  }, parser);
}
