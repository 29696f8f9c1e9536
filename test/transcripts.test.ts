import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { claudeAdapter } from '../lib/agents/claude.js';
import { codexAdapter } from '../lib/agents/codex.js';
import { cursorAdapter } from '../lib/agents/cursor.js';
import { customAdapter } from '../lib/agents/custom.js';
import { geminiAdapter } from '../lib/agents/gemini.js';
import type { AgentAdapter } from '../lib/agents/types.js';
import type { CustomAgentConfig } from '../lib/config.js';
import { decideOutcome } from '../lib/runner/core/outcome.js';
import { ROOT } from './helpers/spool.js';

/**
 * Every recorded transcript (reference/transcripts, copied to test/fixtures) parses to the
 * expected final message, session id, usage and outcome.
 */
const settings = { extra_args: [], env: {} };
const adapters: Record<string, AgentAdapter> = {
  codex: codexAdapter(settings),
  claude: claudeAdapter(settings),
  gemini: geminiAdapter(settings),
  cursor: cursorAdapter(settings),
};

interface Expected {
  exit: number | null;
  signal?: string;
  status: 'done' | 'error';
  code?: 'agent_error' | 'exit_nonzero';
  message?: RegExp;
  final: string | null;
  session: string | null;
  usage: [number, number, number] | null;
  cost?: number;
  hint?: RegExp;
  parentUsage?: [number, number, number];
  ownUsage?: [number, number, number];
}

const HELLO = 'Hello from the fake model.';
const LOGIN = /not logged in or has no valid API key/;

const cases: Record<string, Expected> = {
  'claude_json_ok.json': { exit: 0, status: 'done', final: HELLO, session: '669f7af4-3041-45b6-a8bc-c376d5dbb31b', usage: [52, 5, 7], cost: 0.00035725 },
  'claude_json_error_max_turns.json': { exit: 1, status: 'error', code: 'agent_error', message: /Reached maximum number of turns \(1\)/, final: null, session: '556794ef-1ceb-488a-941d-3a53cb59be9d', usage: [52, 5, 7], cost: 0.0007145 },
  'claude_stream_json_ok.jsonl': { exit: 0, status: 'done', final: HELLO, session: 'd0b3ff32-b107-41f6-9e65-df1110f28a33', usage: [52, 5, 7], cost: 0.00035725 },
  'claude_stream_json_partial.jsonl': { exit: 0, status: 'done', final: HELLO, session: 'f7eb6a03-e85f-433d-9512-7b02a9448cc9', usage: [52, 5, 7] },
  'claude_stream_json_tool_acceptEdits.jsonl': { exit: 0, status: 'done', final: HELLO, session: '73bddc37-1fba-4c2c-9f32-aa94ded92cde', usage: [104, 10, 14], cost: 0.00107175 },
  'claude_stream_json_tool_denied_default.jsonl': { exit: 0, status: 'done', final: HELLO, session: '05e05146-81d0-4acc-b779-614d1be77ff1', usage: [104, 10, 14] },
  'claude_stream_json_http400.jsonl': { exit: 1, status: 'error', code: 'agent_error', message: /API Error: 400 fake bad request/, final: null, session: '0d8d333e-58bc-4b47-84f6-6fa87cb19384', usage: [0, 0, 0] },
  'claude_stream_json_http401_retries.jsonl': { exit: 1, status: 'error', code: 'agent_error', message: /Invalid API key/, final: null, session: '85861710-c868-4566-b09e-213434f38d3b', usage: [0, 0, 0], hint: LOGIN },
  'codex_exec_json_ok.jsonl': { exit: 0, status: 'done', final: HELLO, session: '01a20a1b-855a-7261-9122-a279361c7fe5', usage: [42, 5, 7] },
  'codex_exec_json_tool_readonly.jsonl': { exit: 0, status: 'done', final: HELLO, session: '01a20a31-a55b-78d1-93eb-2cf682e23ad9', usage: [82, 8, 7] },
  'codex_exec_json_tool_workspacewrite.jsonl': { exit: 0, status: 'done', final: HELLO, session: '01a20a31-a818-7a03-8848-467b48d19b96', usage: [82, 8, 7] },
  'codex_exec_resume_json_ok.jsonl': { exit: 0, status: 'done', final: HELLO, session: '01a20a1b-855a-7261-9122-a279361c7fe5', usage: [84, 10, 14], parentUsage: [42, 5, 7], ownUsage: [42, 5, 7] },
  'codex_exec_json_http400.jsonl': { exit: 1, status: 'error', code: 'agent_error', message: /fake bad request/, final: null, session: '01a20a1b-fb22-7531-8a52-e468b033b469', usage: null },
  'codex_exec_json_http401.jsonl': { exit: 1, status: 'error', code: 'agent_error', message: /401 Unauthorized: fake bad key/, final: null, session: '01a20a1b-dfc4-7642-8aac-dc60c4648dd4', usage: null, hint: LOGIN },
  // codex retries a refused connection forever: only agent-async's limit ends it
  'codex_exec_json_conn_refused_hangs.jsonl': { exit: null, signal: 'SIGTERM', status: 'error', code: 'exit_nonzero', message: /killed by signal SIGTERM: Reconnecting... waiting for network/, final: null, session: '01a20a1c-867b-7261-a1fc-544339d20b46', usage: null, hint: /could not reach its API/ },
  'gemini_stream_json_ok.jsonl': { exit: 0, status: 'done', final: HELLO, session: 'a8b7c600-92a6-4505-afa3-fd222dbeac05', usage: [42, 5, 7] },
  'gemini_stream_json_tool_auto_edit.jsonl': { exit: 0, status: 'done', final: HELLO, session: 'bffb33d5-f085-42e4-8e70-18000080819c', usage: [84, 10, 14] },
  'gemini_stream_json_tool_yolo.jsonl': { exit: 0, status: 'done', final: HELLO, session: 'f5e9fbfa-0223-43d9-92e7-24662505ec29', usage: [84, 10, 14] },
  // an HTTP error exits with the status modulo 256 (400 → 144)
  'gemini_stream_json_http400.jsonl': { exit: 144, status: 'error', code: 'agent_error', message: /API key not valid/, final: null, session: '2afcdcef-d5b4-453a-97ba-5bd10e6c234b', usage: [0, 0, 0], hint: LOGIN },
  'gemini_json_ok.json': { exit: 0, status: 'done', final: HELLO, session: '38ca4a33-3741-49fc-b8e5-3ff401002fca', usage: [84, 10, 14] },
  'gemini_json_tool_yolo.json': { exit: 0, status: 'done', final: HELLO, session: '2eaf401c-9086-4bd6-84a4-917322943a03', usage: [84, 10, 14] },
  'gemini_json_http400.stderr.txt': { exit: 144, status: 'error', code: 'agent_error', message: /API key not valid/, final: null, session: 'a4c1272f-e83e-472d-b15c-983a1f52c3e6', usage: null, hint: LOGIN },
  'cursor/cursor_stream_json_ok.jsonl': { exit: 0, status: 'done', final: 'Hello from the stub cursor.', session: 'c6b9f3a1-5d2e-4f0a-9b1c-3e8d7a6f2b10', usage: [30, 6, 4] },
  'cursor/cursor_error_auth.stderr.txt': { exit: 1, status: 'error', code: 'exit_nonzero', message: /exited with code 1: Error: Authentication required/, final: null, session: null, usage: null, hint: LOGIN },
};

function fixturePath(name: string): string {
  return name.startsWith('cursor/') ? path.join(ROOT, 'test/fixtures', name) : path.join(ROOT, 'test/fixtures/transcripts', name);
}

const usageOf = (u: [number, number, number] | null) =>
  u && { input_tokens: u[0], output_tokens: u[1], cached_input_tokens: u[2] };

describe('every transcript parses to its final message, session, usage and outcome', () => {
  it('covers every transcript file', () => {
    const files = fs.readdirSync(path.join(ROOT, 'test/fixtures/transcripts'));
    expect(files.sort()).toEqual(Object.keys(cases).filter((name) => !name.startsWith('cursor/')).sort());
  });

  for (const [name, expected] of Object.entries(cases)) {
    it(name, () => {
      const agent = path.basename(name).split('_')[0]!;
      const adapter = adapters[agent]!;
      const parser = adapter.createParser()!;
      const stream = name.endsWith('.stderr.txt') ? 'stderr' : 'stdout';
      for (const line of fs.readFileSync(fixturePath(name), 'utf8').split('\n')) if (line !== '') parser.line(line, stream);
      const parsed = parser.result();
      expect(parsed.final_message).toBe(expected.final);
      expect(parsed.session_id).toBe(expected.session);
      if (expected.usage) expect(parsed.usage).toMatchObject(usageOf(expected.usage)!);
      else expect(parsed.usage).toBeNull();
      if (expected.cost !== undefined) expect(parsed.usage?.cost_usd).toBeCloseTo(expected.cost, 10);

      const outcome = decideOutcome({
        exit: {
          schema_version: 1, attempt: 1, pid: 1, exit_code: expected.exit, signal: expected.signal ?? null,
          reason: 'exited', started_at: null, ended_at: new Date().toISOString(), spawn_error: null, survivors: [],
        },
        cancelRequested: false,
        done: null,
        timeoutSeconds: null,
        stallSeconds: null,
        verdict: adapter.judge(parsed, expected.exit, expected.signal ?? null),
        parsed,
        parentUsage: expected.parentUsage ? { ...usageOf(expected.parentUsage)!, cost_usd: null } : null,
      });
      expect(outcome.status).toBe(expected.status);
      expect(outcome.session_id).toBe(expected.session);
      expect(outcome.result?.final_message ?? null).toBe(expected.final);
      if (expected.code) expect(outcome.error?.code).toBe(expected.code);
      if (expected.message) expect(outcome.error?.message).toMatch(expected.message);
      if (expected.hint) expect(outcome.error?.hint).toMatch(expected.hint);
      else if (outcome.error) expect(outcome.error.hint).toBeUndefined();
      if (expected.ownUsage) {
        expect(outcome.usage).toMatchObject(usageOf(expected.ownUsage)!);
        expect(outcome.result?.cumulative_usage).toMatchObject(usageOf(expected.usage)!);
      }
    });
  }

  it('warnings and retries are not failures: codex "Reconnecting" errors before a completed turn', () => {
    const parser = adapters.codex!.createParser()!;
    const lines = fs.readFileSync(fixturePath('codex_exec_json_ok.jsonl'), 'utf8').split('\n').filter(Boolean);
    lines.splice(3, 0, '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}', 'not json at all', '{"type":"item.completed","item":{"id":"x","type":"error","message":"warning"}}');
    for (const line of lines) parser.line(line, 'stdout');
    expect(adapters.codex!.judge(parser.result(), 0, null)).toEqual({ ok: true });
  });

  it('a zero exit without the terminal success event is still a failure', () => {
    const parser = adapters.claude!.createParser()!;
    parser.line(fs.readFileSync(fixturePath('claude_stream_json_ok.jsonl'), 'utf8').split('\n')[0]!, 'stdout');
    const verdict = adapters.claude!.judge(parser.result(), 0, null);
    expect(verdict).toMatchObject({ ok: false, error: { code: 'agent_error', message: /without reporting a finished turn/ } });
  });
});

describe('a custom agent that prints plain text', () => {
  const parserOf = () => customAdapter('texty', { command: ['texty'], prompt_via: 'argv', output: 'text', policy_args: {}, env: {} } as unknown as CustomAgentConfig).createParser()!;

  it('ends with the whole lines of its last 64 KiB of stdout as the final message, stderr as notes', () => {
    const parser = parserOf();
    const lines = Array.from({ length: 300_000 }, (_, i) => `line ${i}`);
    for (const line of lines) parser.line(line, 'stdout');
    parser.line('a warning', 'stderr');
    let kept = 0;
    for (let chars = 0; chars + lines[lines.length - 1 - kept]!.length + 1 <= 64 * 1024; kept += 1) chars += lines[lines.length - 1 - kept]!.length + 1;
    expect(parser.result().final_message).toBe(lines.slice(-kept).join('\n'));
    expect(parser.result().final_message!.startsWith('line ')).toBe(true);
    expect(parser.result().notes).toContain('a warning');
  });

  it('keeps the end of a line longer than that, and says nothing when it printed nothing', () => {
    const parser = parserOf();
    parser.line('x'.repeat(200_000) + 'END', 'stdout');
    expect(parser.result().final_message).toBe(`${'x'.repeat(64 * 1024 - 3)}END`);
    const silent = parserOf();
    silent.line('   ', 'stdout');
    expect(silent.result().final_message).toBeNull();
  });
});
