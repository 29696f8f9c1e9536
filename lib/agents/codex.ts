import type { BuiltinAgentConfig, Policy } from '../config.js';
import { agentAdapter } from './judge.js';
import {
  asCount, asObject, asString, emptyParse, eventOf, jsonLine, keepNote, promptDelivery,
  type AgentAdapter, type StreamParser,
} from './types.js';

/** OpenAI Codex CLI 0.169: `codex exec --json`; recorded streams in test/fixtures/transcripts/codex_*. */
const SANDBOX: Record<Policy, string[]> = {
  suggest: ['-s', 'read-only'],
  'auto-edit': ['-s', 'workspace-write'],
  'full-auto': ['--dangerously-bypass-approvals-and-sandbox'],
};

function parser(): StreamParser {
  const parsed = { ...emptyParse(), cumulative: true };
  return {
    line(text, stream) {
      const event = eventOf(text, stream, parsed.notes);
      if (!event) return;
      const item = asObject(event.item);
      switch (event.type) {
        case 'thread.started':
          parsed.session_id = asString(event.thread_id) ?? parsed.session_id;
          break;
        case 'item.completed':
          if (item.type === 'agent_message') parsed.final_message = asString(item.text) ?? parsed.final_message;
          else if (item.type === 'error' && typeof item.message === 'string') keepNote(parsed.notes, item.message);
          break;
        case 'turn.completed': {
          const usage = asObject(event.usage);
          parsed.usage = {
            input_tokens: asCount(usage.input_tokens),
            output_tokens: asCount(usage.output_tokens),
            cached_input_tokens: asCount(usage.cached_input_tokens),
            cost_usd: null,
          };
          parsed.completed = true;
          break;
        }
        case 'turn.failed':
          parsed.failure = asString(asObject(event.error).message) ?? 'turn failed';
          break;
        case 'error':
          if (typeof event.message === 'string') keepNote(parsed.notes, event.message);
          break;
      }
    },
    result: () => parsed,
  };
}

/** The command inside codex's `/bin/bash -lc '…'` wrapper. */
function unwrapShell(command: string): string {
  const wrapped = /^(?:\/\S*\/)?(?:ba|z)?sh -lc '(.*)'$/s.exec(command);
  return wrapped ? wrapped[1]!.replaceAll("'\\''", "'") : command;
}

/** codex exec --json: the item it is on (a command, an edit, a tool call, its reasoning, its answer). */
export function codexActivity(line: string): string | null {
  const event = jsonLine(line);
  if (!event) return null;
  if (event.type === 'turn.started') return 'thinking';
  if (event.type !== 'item.started' && event.type !== 'item.updated' && event.type !== 'item.completed') return null;
  const item = asObject(event.item);
  switch (item.type) {
    case 'command_execution':
      return `${event.type === 'item.completed' ? 'ran' : 'running'}: ${unwrapShell(asString(item.command) ?? 'a command')}`;
    case 'file_change': {
      const changes = Array.isArray(item.changes) ? item.changes.map((change) => asString(asObject(change).path)).filter(Boolean) : [];
      return `editing ${changes.join(', ') || 'files'}`;
    }
    case 'mcp_tool_call':
      return `tool ${[asString(item.server), asString(item.tool)].filter(Boolean).join('.')}`;
    case 'web_search':
      return `searching: ${asString(item.query) ?? ''}`;
    case 'reasoning':
      return `thinking${asString(item.text) ? `: ${String(item.text)}` : ''}`;
    case 'agent_message':
      return `says: ${asString(item.text) ?? ''}`;
    case 'todo_list':
      return 'planning';
    default:
      return null;
  }
}

export function codexAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'codex',
    binary: settings.binary ?? 'codex',
    installHint: 'npm install -g @openai/codex',
    loginHint: 'run `codex login`, or set CODEX_API_KEY',
    activity: codexActivity,
  };
  return agentAdapter(subject, 'OpenAI Codex CLI (codex exec --json)', (input) => {
    const { request } = input;
    const { viaStdin, stdin } = promptDelivery(input);
    const argv = [subject.binary, 'exec', '--json', '--skip-git-repo-check', '-C', request.cwd];
    if (request.model) argv.push('-m', request.model);
    argv.push(...SANDBOX[request.policy as Policy], ...settings.extra_args);
    // resume takes its session after the subcommand; sandbox and cwd flags must come before it
    if (request.resume_session) argv.push('resume', request.resume_session);
    if (!viaStdin) argv.push('--', input.prompt);
    return { argv, stdin, env: { ...settings.env } };
  }, parser);
}
