import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claudeActivity } from '../lib/agents/claude.js';
import { codexActivity } from '../lib/agents/codex.js';
import { cursorActivity } from '../lib/agents/cursor.js';
import { geminiActivity } from '../lib/agents/gemini.js';
import { plainActivity } from '../lib/agents/activity.js';
import { closestFlag, flagsUsed, strayWordsMessage, unknownFlagMessage } from '../lib/cli/argv-check.js';
import { runDoctor } from '../lib/cli/doctor-checks.js';
import { verdict, type Check } from '../lib/cli/doctor.js';
import { lastLinesStart } from '../lib/cli/logs.js';
import { loadJobs } from '../lib/mcp/lazy-jobs.js';
import { changesAnswer } from '../lib/mcp/results.js';
import type { JobState } from '../lib/jobs.js';
import { stubbedSpool } from './helpers/mcp.js';
import { cleanupSpools } from './helpers/spool.js';

/** The pure pieces behind compact answers and the CLI's first-hour fixes (issue 13 sections 1 and 4). */

afterAll(cleanupSpools);

const FIXTURES = path.join(import.meta.dirname, 'fixtures');
const fixtureLines = (file: string): string[] => fs.readFileSync(path.join(FIXTURES, file), 'utf8').split('\n');
/** What a reader makes of a stream: the newest line it understands, as the read model asks. */
const newest = (reader: (line: string) => string | null, lines: string[]): string | null =>
  lines.map(reader).filter((activity) => activity !== null).at(-1) ?? null;

describe('current activity, read from each CLI\'s stream', () => {
  const cases: Array<[string, (line: string) => string | null, string[], string | null]> = [
    ['codex: a command it started, out of its shell wrapper', codexActivity, fixtureLines('transcripts/codex_exec_json_tool_workspacewrite.jsonl').slice(0, 4),
      'running: echo fake-tool-ran > fake_tool_output.txt && cat fake_tool_output.txt'],
    ['codex: a quoted quote', codexActivity, [String.raw`{"type":"item.started","item":{"type":"command_execution","command":"bash -lc 'echo '\\''hi'\\'''"}}`], "running: echo 'hi'"],
    ['codex: its answer, last', codexActivity, fixtureLines('transcripts/codex_exec_json_tool_workspacewrite.jsonl'), 'says: Hello from the fake model.'],
    ['codex: stderr noise says nothing', codexActivity, ['WARNING: proceeding, even though we could not create PATH aliases: x', 'Reading additional input from stdin...'], null],
    ['codex: an edit', codexActivity, ['{"type":"item.started","item":{"type":"file_change","changes":[{"path":"src/a.ts","kind":"update"}]}}'], 'editing src/a.ts'],
    ['claude: a tool call', claudeActivity, fixtureLines('transcripts/claude_stream_json_tool_acceptEdits.jsonl').filter((l) => l.includes('"tool_use"')).slice(0, 1),
      'Bash: echo fake-tool-ran > fake_tool_output.txt && cat fake_tool_output.txt'],
    ['gemini: a tool call', geminiActivity, fixtureLines('transcripts/gemini_stream_json_tool_yolo.jsonl').filter((l) => l.includes('"tool_use"')),
      'run_shell_command: echo fake-tool-ran > fake_tool_output.txt && cat fake_tool_output.txt'],
    ['cursor: a tool call started', cursorActivity, fixtureLines('cursor/cursor_stream_json_ok.jsonl').filter((l) => l.includes('"started"')), 'read: README.md'],
    ['exec: the last line', plainActivity, ['compiling', '  42 tests passed', ''], '  42 tests passed'],
  ];
  for (const [name, reader, lines, expected] of cases) {
    it(name, () => {
      expect(newest(reader, lines)).toBe(expected);
    });
  }
});

describe('command lines that say what was meant', () => {
  const known = new Set(['any', 'timeout', 'json', 'home', 'help', 'h', 'version', 'policy', 'approval-policy', 'approvalPolicy', 'wait', 'cwd']);
  const cases: Array<[string, string, string[], RegExp | undefined]> = [
    ['a misspelt flag', 'wait', ['wait', '--anyy', 'abc'], /^wait: unknown flag --anyy \(did you mean --any\?\); see agent-async wait --help$/],
    ['a flag with =', 'wait', ['wait', '--timout=5s', 'abc'], /unknown flag --timout \(did you mean --timeout\?\)/],
    ['a flag nothing is close to', 'ls', ['ls', '--colour'], /^ls: unknown flag --colour; see/],
    ['a negated boolean is known', 'wait', ['wait', '--no-any', 'abc'], undefined],
    ['words after -- are not ours', 'start', ['start', 'exec', '--', 'ls', '--frobnicate'], undefined],
    ['exec without --', 'start', ['start', 'exec', 'ls', '-la'], /put the command after --, so its own flags \(-l, -a\) are not read as agent-async's: agent-async start exec -- ls -la$/],
  ];
  for (const [name, command, words, message] of cases) {
    it(name, () => {
      const said = unknownFlagMessage(command, words, known);
      if (message) expect(said).toMatch(message);
      else expect(said).toBeUndefined();
    });
  }

  it('flags are found before -- only, each letter of a short cluster on its own', () => {
    expect(flagsUsed(['-la', '--x=1', 'word', '--', '--y'])).toEqual(['-l', '-a', '--x']);
    expect(closestFlag('--polcy', known)).toBe('--policy');
    expect(closestFlag('--zzz', known)).toBeUndefined();
  });

  it('stray words before -- name the flag that was meant', () => {
    const words = ['start', 'exec', '--timeout', '5', 'min', '--', 'true'];
    expect(strayWordsMessage(['min'], words)).toBe('start exec: "min" before --: the command goes after --, and each flag takes one word (did you mean --timeout 5m? a duration is one word: 90s, 5m, 2h)');
    expect(strayWordsMessage(['npm'], ['start', 'exec', 'npm', '--', 'test'])).toMatch(/"npm" before --.*a flag value with spaces needs quotes/);
    expect(strayWordsMessage([], words)).toBeUndefined();
  });
});

describe('logs --tail counts lines', () => {
  const cases: Array<[string, number, number | undefined]> = [
    ['a\nb\nc\n', 2, 2],
    ['a\nb\nc', 2, 2],
    ['a\nb\nc\n', 3, undefined],
    ['ä\nb\n', 1, 3],
    ['one line\n', 1, undefined],
  ];
  for (const [text, lines, start] of cases) {
    it(`${JSON.stringify(text)}, last ${lines}`, () => {
      expect(lastLinesStart(text, lines)).toBe(start);
    });
  }
});

describe('doctor', () => {
  const check = (level: Check['level']): Check => ({ level, what: 'x', detail: 'y' });
  it('is all good only without warnings', () => {
    expect(verdict([check('ok')])).toBe('All good.');
    expect(verdict([check('ok'), check('warn'), check('warn')])).toBe('It works, with 2 warnings (! above).');
    expect(verdict([check('fail'), check('warn')])).toBe('Something needs fixing (✗ above); also 1 warning (! above).');
  });

  it('names the API key variable of an agent with no login', () => {
    const spool = stubbedSpool();
    const home = fs.mkdtempSync(path.join(spool.work, 'home-'));
    const checks = runDoctor(spool.home, { PATH: spool.env.PATH, HOME: home });
    const hints = Object.fromEntries(checks.filter((c) => c.what.startsWith('agent ')).map((c) => [c.what, c.fix]));
    expect(hints).toMatchObject({
      'agent codex': expect.stringMatching(/CODEX_API_KEY/),
      'agent claude': expect.stringMatching(/ANTHROPIC_API_KEY/),
      'agent gemini': expect.stringMatching(/GEMINI_API_KEY/),
      'agent cursor': expect.stringMatching(/CURSOR_API_KEY/),
    });
  });
});

describe('compact answers', () => {
  beforeAll(loadJobs);

  it('list an isolated job\'s changed files in one string each, at most 20', () => {
    const files = Array.from({ length: 22 }, (_, i) => ({ path: `f${i}.ts`, old_path: null, status: 'modified', insertions: i, deletions: 1 }));
    const changes = { branch: 'agent-async/x', base_commit: 'a', head_commit: 'b', files, patch_bytes: 10, applied: null, discarded_at: null };
    const isolated = { status: 'done', request: { isolation: 'worktree' }, changes } as unknown as JobState;
    const answer = changesAnswer(isolated).changes!;
    expect(answer).toMatchObject({ branch: 'agent-async/x', files_changed: 22, files_not_listed: 2, applied: false, discarded: false });
    expect(answer.files).toHaveLength(20);
    expect(answer.files).toEqual(expect.arrayContaining(['M f0.ts +0 -1', 'M f19.ts +19 -1']));
    expect(changesAnswer({ status: 'done', request: { isolation: 'none' } } as unknown as JobState)).toEqual({});
  });
});
