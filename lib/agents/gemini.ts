import type { BuiltinAgentConfig, Policy } from '../config.js';
import { judgeRun } from './judge.js';
import {
  asCount, asObject, asString, emptyParse, jsonLine, keepNote, promptDelivery,
  type AgentAdapter, type StreamParser,
} from './types.js';

/** Gemini CLI 0.61: `gemini -o stream-json --prompt=…`. See AGENT-CLIS.md §3. */
const APPROVAL_MODE: Record<Policy, string> = {
  suggest: 'plan',
  'auto-edit': 'auto_edit',
  'full-auto': 'yolo',
};

function parser(): StreamParser {
  const parsed = emptyParse();
  let answer = '';
  return {
    line(text, stream) {
      const event = jsonLine(text);
      if (!event) {
        if (stream === 'stderr' && text.trim() !== '') keepNote(parsed.notes, text.trim());
        return;
      }
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
    result: () => parsed,
  };
}

export function geminiAdapter(settings: BuiltinAgentConfig): AgentAdapter {
  const subject = {
    name: 'gemini',
    binary: settings.binary ?? 'gemini',
    installHint: 'npm install -g @google/gemini-cli',
    loginHint: 'set GEMINI_API_KEY, or run `gemini` once and log in',
  };
  return {
    ...subject,
    description: 'Google Gemini CLI (gemini -o stream-json)',
    takesPrompt: true,
    buildInvocation(input) {
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
    },
    createParser: parser,
    judge: (parsed, exitCode, signal) => judgeRun(subject, parsed, exitCode, signal),
  };
}
