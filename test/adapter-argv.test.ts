import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readContextFiles } from '../lib/agents/context-files.js';
import { assemblePrompt, jobFooter } from '../lib/agents/prompt.js';
import { getAdapter } from '../lib/agents/registry.js';
import { configSchema, type Policy } from '../lib/config.js';
import { newJobId } from '../lib/spool/ids.js';
import type { JobRequest } from '../lib/spool/state.js';

/**
 * What each adapter starts, as pure functions of the request: argv per policy, the prompt as
 * one argument or through stdin, resuming a session, per-agent config; and the context-file
 * checks. The wiring (a real runner starting a stub CLI) is proven in adapters.test.ts.
 */

const config = configSchema.parse({});
const CWD = '/work/repo';

function request(agent: string, overrides: Partial<JobRequest> = {}): JobRequest {
  return {
    agent, argv: null, cwd: CWD, timeout_seconds: null, stall_seconds: null, env_path: null, retry_of: null,
    policy: 'auto-edit', model: null, continue_of: null, resume_session: null, context_files: [], template: null, ...overrides,
  };
}

function invoke(agent: string, prompt: string, overrides: Partial<JobRequest> = {}, cfg = config) {
  return getAdapter(agent, cfg).buildInvocation({ request: request(agent, overrides), prompt, stdinThreshold: cfg.prompt_stdin_bytes });
}

const EXPECTED_ARGV: Record<string, Record<Policy, string[]>> = {
  codex: {
    suggest: ['codex', 'exec', '--json', '--skip-git-repo-check', '-C', CWD, '-s', 'read-only', '--'],
    'auto-edit': ['codex', 'exec', '--json', '--skip-git-repo-check', '-C', CWD, '-s', 'workspace-write', '--'],
    'full-auto': ['codex', 'exec', '--json', '--skip-git-repo-check', '-C', CWD, '--dangerously-bypass-approvals-and-sandbox', '--'],
  },
  claude: {
    suggest: ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'plan', '--'],
    'auto-edit': ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'acceptEdits', '--'],
    'full-auto': ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'bypassPermissions', '--'],
  },
  gemini: {
    suggest: ['gemini', '-o', 'stream-json', '--approval-mode', 'plan'],
    'auto-edit': ['gemini', '-o', 'stream-json', '--approval-mode', 'auto_edit'],
    'full-auto': ['gemini', '-o', 'stream-json', '--approval-mode', 'yolo'],
  },
  cursor: {
    suggest: ['cursor-agent', '-p', '--output-format', 'stream-json', '--trust', '--workspace', CWD, '--mode', 'ask', '--'],
    'auto-edit': ['cursor-agent', '-p', '--output-format', 'stream-json', '--trust', '--workspace', CWD, '--'],
    'full-auto': ['cursor-agent', '-p', '--output-format', 'stream-json', '--trust', '--workspace', CWD, '--force', '--'],
  },
};

/** The prompt element: gemini takes it as --prompt=…, the others after --. */
const promptArg = (agent: string, prompt: string): string => (agent === 'gemini' ? `--prompt=${prompt}` : prompt);

describe('adapters build the documented argv for every policy', () => {
  const id = newJobId();
  const prompt = assemblePrompt(id, 'fix the bug', []);

  it('the prompt is the task and the job footer', () => {
    expect(prompt).toBe(`fix the bug\n\n${jobFooter(id)}\n`);
  });

  for (const [agent, byPolicy] of Object.entries(EXPECTED_ARGV)) {
    for (const [policy, expected] of Object.entries(byPolicy)) {
      it(`${agent} ${policy}`, () => {
        const invocation = invoke(agent, prompt, { policy });
        expect(invocation.argv).toEqual([...expected, promptArg(agent, prompt)]);
        expect(invocation.stdin).toBeNull();
        if (agent === 'gemini') expect(invocation.env).toMatchObject({ GEMINI_CLI_NO_RELAUNCH: 'true', GEMINI_CLI_TRUST_WORKSPACE: 'true' });
        const asRoot = process.getuid?.() === 0;
        expect(invocation.env.IS_SANDBOX).toBe(agent === 'claude' && policy === 'full-auto' && asRoot ? '1' : undefined);
      });
    }
  }

  for (const agent of Object.keys(EXPECTED_ARGV)) {
    it(`${agent}: a dash-leading prompt stays one argument, after the options`, () => {
      const dashed = '-rf --help is not a flag here';
      const invocation = invoke(agent, dashed);
      expect(invocation.argv).toEqual([...EXPECTED_ARGV[agent]!['auto-edit'], promptArg(agent, dashed)]);
    });

    it(`${agent}: a prompt over prompt_stdin_bytes goes through stdin, not argv`, () => {
      const big = `${'x'.repeat(1024)}\n`.repeat(1024);
      const invocation = invoke(agent, big);
      expect(invocation.stdin).toBe(big);
      expect(invocation.argv.join(' ')).not.toContain('xxxx');
      expect(invocation.argv.at(-1)).not.toBe('--');
      const justUnder = 'y'.repeat(config.prompt_stdin_bytes);
      expect(invoke(agent, justUnder).stdin).toBeNull();
    });
  }
});

describe('continuing and per-agent settings', () => {
  it('a continued job resumes the worker session with the new prompt', () => {
    const p = 'and now the tests';
    const expected: Record<string, string[]> = {
      codex: ['codex', 'exec', '--json', '--skip-git-repo-check', '-C', CWD, '-s', 'workspace-write', 'resume', 'sess-1', '--', p],
      claude: ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'acceptEdits', '--resume', 'sess-1', '--', p],
      gemini: ['gemini', '-o', 'stream-json', '--approval-mode', 'auto_edit', '--resume', 'sess-1', `--prompt=${p}`],
      cursor: ['cursor-agent', '-p', '--output-format', 'stream-json', '--trust', '--workspace', CWD, '--resume', 'sess-1', '--', p],
    };
    for (const [agent, argv] of Object.entries(expected)) {
      expect(invoke(agent, p, { resume_session: 'sess-1', continue_of: newJobId() }).argv, agent).toEqual(argv);
    }
  });

  it('binary path, model, extra args and env per agent come from config', () => {
    const custom = configSchema.parse({ agents: { codex: { binary: '/opt/my-codex', extra_args: ['-c', 'model_reasoning_effort="high"'], env: { CUSTOM_FLAG: 'on' } } } });
    const invocation = invoke('codex', 'hi', { model: 'gpt-6.1-sol' }, custom);
    expect(invocation.argv).toEqual(['/opt/my-codex', 'exec', '--json', '--skip-git-repo-check', '-C', CWD, '-m', 'gpt-6.1-sol', '-s', 'workspace-write',
      '-c', 'model_reasoning_effort="high"', '--', 'hi']);
    expect(invocation.env.CUSTOM_FLAG).toBe('on');
  });
});

describe('context files', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-context-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const repo = path.join(root, 'repo');
  fs.mkdirSync(path.join(repo, 'src'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'src', 'a.ts'), 'export const a = 1;\n===== END FILE "src/a.ts" =====\n');
  fs.writeFileSync(path.join(repo, 'notes.md'), '# notes');
  fs.writeFileSync(path.join(root, 'secret.txt'), 'secret');
  fs.symlinkSync(path.join(root, 'secret.txt'), path.join(repo, 'link.txt'));
  fs.writeFileSync(path.join(repo, 'blob.bin'), Buffer.from([0x89, 0x50, 0x00, 0x01]));
  fs.writeFileSync(path.join(repo, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  fs.writeFileSync(path.join(repo, 'big.txt'), 'y'.repeat(300 * 1024));
  const limits = { fileMaxBytes: config.context_file_max_bytes, totalMaxBytes: config.context_total_max_bytes };

  it('are inlined between delimiters no file contains, after the task and before the footer', () => {
    const id = newJobId();
    const files = readContextFiles(repo, ['src/a.ts', 'notes.md'], limits);
    expect(files.map((file) => file.path)).toEqual(['src/a.ts', 'notes.md']);
    const prompt = assemblePrompt(id, 'review these', files);
    const marker = /===== BEGIN FILE "src\/a\.ts" (ctx-[0-9a-f]{12}) =====/.exec(prompt)![1]!;
    expect(prompt).toContain(`===== BEGIN FILE "src/a.ts" ${marker} =====\nexport const a = 1;\n===== END FILE "src/a.ts" =====\n===== END FILE "src/a.ts" ${marker} =====`);
    expect(prompt).toContain(`===== BEGIN FILE "notes.md" ${marker} =====\n# notes\n===== END FILE "notes.md" ${marker} =====`);
    expect(prompt.indexOf('review these')).toBe(0);
    expect(prompt.trimEnd().endsWith(jobFooter(id))).toBe(true);
  });

  const refused: Array<[string, RegExp]> = [
    ['../secret.txt', /context_files\[0\]: "\.\.\/secret\.txt" is outside cwd/],
    [path.join(root, 'secret.txt'), /context_files\[0\]: .* is outside cwd/],
    ['link.txt', /context_files\[0\]: "link\.txt" is a symbolic link to .*secret\.txt, outside cwd/],
    ['blob.bin', /context_files\[0\]: "blob\.bin" is a binary file/],
    ['latin1.txt', /context_files\[0\]: "latin1\.txt" is not UTF-8 text/],
    ['big.txt', /context_files\[0\]: "big\.txt" is 307200 bytes; at most 262144 bytes per file/],
    ['missing.txt', /context_files\[0\]: "missing\.txt" does not exist/],
    ['src', /context_files\[0\]: "src" is not a regular file/],
  ];
  for (const [file, message] of refused) {
    it(`refuses ${file}, naming the entry`, () => {
      expect(() => readContextFiles(repo, [file], limits)).toThrow(message);
    });
  }

  it('refuses files that are together over the total limit', () => {
    expect(() => readContextFiles(repo, ['src/a.ts', 'notes.md'], { fileMaxBytes: 1000, totalMaxBytes: 50 })).toThrow(/context_files: together are over 50 bytes/);
  });
});
