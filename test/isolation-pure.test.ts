import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema } from '../lib/config.js';
import { checkIsolationInput, workTreeOf } from '../lib/isolation.js';
import { exclusionKey } from '../lib/runner/core/schedule.js';
import { parseJobState } from '../lib/spool/state.js';
import { jobRequest } from './helpers/job-request.mjs';

/** The decisions of worktree isolation that need no process: which work tree a job holds, what input it refuses. */

const scratch = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'aa-iso-pure-')));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const snapshot = { id: 'parentjob', repo_root: '/repo', prefix: '', base_commit: 'b', from: 'work_tree' as const, ref: 'main', head: 'h', submodules: [] };

describe('exclusionKey', () => {
  const cases: Array<[string, Record<string, unknown>, string | null]> = [
    ['a job from before isolation (no fields): its cwd', {}, '/repo/sub'],
    ['no isolation outside git: its cwd', { isolation: 'none', work_tree: null }, '/repo/sub'],
    ['no isolation in a repository: the work tree, whatever the folder', { isolation: 'none', work_tree: '/repo' }, '/repo'],
    ['isolated: nothing, it has its own worktree', { isolation: 'worktree', work_tree: '/repo', worktree: { ...snapshot, id: 'self' } }, null],
    ['continuing an isolated job: that job\'s worktree', { isolation: 'worktree', work_tree: '/repo', continue_of: 'parentjob', worktree: snapshot }, 'worktree:parentjob'],
  ];
  for (const [what, overrides, key] of cases) {
    it(what, () => {
      expect(exclusionKey(jobRequest('exec', ['true'], { cwd: '/repo/sub', ...overrides }), { exclusive_cwd: true })).toBe(key);
    });
  }
});

describe('workTreeOf', () => {
  it('finds the nearest folder with a .git (folder or file), through symlinks; null outside one', () => {
    const repo = path.join(scratch, 'repo');
    fs.mkdirSync(path.join(repo, '.git'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'a', 'b'), { recursive: true });
    const linked = path.join(scratch, 'linked-worktree');
    fs.mkdirSync(path.join(linked, 'src'), { recursive: true });
    fs.writeFileSync(path.join(linked, '.git'), 'gitdir: /elsewhere\n');
    fs.symlinkSync(path.join(repo, 'a'), path.join(scratch, 'alias'));
    expect(workTreeOf(path.join(repo, 'a', 'b'))).toBe(repo);
    expect(workTreeOf(path.join(scratch, 'alias'))).toBe(repo);
    expect(workTreeOf(path.join(linked, 'src'))).toBe(linked);
    expect(workTreeOf(path.join(scratch, 'missing'))).toBeNull();
    fs.mkdirSync(path.join(scratch, 'plain'));
    expect(workTreeOf(path.join(scratch, 'plain'))).toBeNull();
  });
});

describe('checkIsolationInput', () => {
  it('refuses base and apply without isolation "worktree", naming them', () => {
    expect(() => checkIsolationInput({ isolation: 'worktree', base: 'main', apply: true })).not.toThrow();
    expect(() => checkIsolationInput({ isolation: 'none' })).not.toThrow();
    expect(() => checkIsolationInput({ isolation: 'none', apply: false })).not.toThrow();
    expect(() => checkIsolationInput({ isolation: 'none', base: 'main' })).toThrow(/^base: applies only to a job with isolation "worktree"/);
    expect(() => checkIsolationInput({ isolation: 'none', apply: true })).toThrow(/^apply: applies only to a job with isolation "worktree"/);
  });
});

describe('config and state', () => {
  it('ships isolation "none" and concurrency 4; worktree settings are checked', () => {
    const config = configSchema.parse({});
    expect(config).toMatchObject({ isolation: 'none', concurrency: 4, worktree: { setup: null, copy: [], submodules: 'refuse' } });
    expect(configSchema.parse({ worktree: { copy: ['.env', { path: 'node_modules', mode: 'link' }] } }).worktree.copy)
      .toEqual(['.env', { path: 'node_modules', mode: 'link' }]);
    expect(configSchema.safeParse({ worktree: { setup: [] } }).success).toBe(false);
    expect(configSchema.safeParse({ isolation: 'container' }).success).toBe(false);
  });

  it('reads a state of schema_version 1 (written before isolation)', () => {
    const old = {
      schema_version: 1, id: '0hooa00000000000000000a', status: 'pending', seq: 0, request: jobRequest(),
      created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', started_at: null, attempt: 0,
      runner_epoch: null, supervisor: null, worker: null, finished_at: null, exit_code: null, signal: null, error: null,
      notified: null, result: null, session_id: null, usage: null, duration_ms: null,
    };
    const parsed = parseJobState(old);
    expect(parsed.ok).toBe(true);
    expect(exclusionKey(parsed.ok ? parsed.state.request : jobRequest(), { exclusive_cwd: true })).toBe('/tmp');
  });
});
