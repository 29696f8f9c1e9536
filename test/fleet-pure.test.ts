import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { QueueError, RUNNER_FEATURES, canTake, queueUrlOf, redact, requirementsFor, whyPending, type RunnerView } from '../lib/fleet/index.js';
import { parseQueueUrl } from '../lib/fleet/url.js';
import { spoolPaths } from '../lib/spool/layout.js';

/** The fleet module's decisions that need no database: URLs and secrets, config, matching. */
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-fleet-config-'));
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

describe('queue URL', () => {
  it('parses what node-postgres takes and shows it without the password', () => {
    const target = parseQueueUrl('postgresql://runner:p%40ss%3Aw0rd@db.internal:6432/agent_async?sslmode=disable&application_name=x');
    expect(target).toMatchObject({ shown: 'postgres://runner@db.internal:6432/agent_async', user: 'runner', database: 'agent_async', urlPassword: 'p@ss:w0rd' });
    expect(target.options).not.toHaveProperty('password');
    expect(target.options.application_name).toBe('x');
    expect(target.secrets).toEqual(expect.arrayContaining(['p@ss:w0rd', 'p%40ss%3Aw0rd']));
    const socket = parseQueueUrl('postgres://me@/q?host=/run/postgresql');
    expect(socket.shown).toBe('postgres://me@socket /run/postgresql:5432/q');
    expect(socket.urlPassword).toBeUndefined();
  });

  it('redacts passwords from any text: in the authority, in a query parameter, and the known secret anywhere', () => {
    expect(redact('failed: postgres://u:hunter2@h/db and postgresql://v:x@y/z')).toBe('failed: postgres://u:***@h/db and postgresql://v:***@y/z');
    expect(redact('postgres://u@h/db?sslmode=require&password=hunter2&x=1')).toBe('postgres://u@h/db?sslmode=require&password=***&x=1');
    expect(redact('the server said hunter2 twice: hunter2', ['hunter2'])).toBe('the server said *** twice: ***');
  });

  it('refuses what is not a PostgreSQL URL with a message that names queue_url and hides the password', () => {
    for (const [url, pattern] of [
      ['http://u:hunter2@h/db', /is not a PostgreSQL URL/],
      ['postgres://u:hunter2@h', /names no database/],
      ['postgres://u:hunter2@h:port/db', /is not a PostgreSQL URL|cannot be parsed|port/],
      [42, /is empty/],
    ] as const) {
      const error = (() => {
        try {
          parseQueueUrl(url);
        } catch (thrown) {
          return thrown;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(QueueError);
      expect((error as QueueError).message).toMatch(/^queue_url: /);
      expect((error as QueueError).message).toMatch(pattern);
      expect((error as QueueError).message).not.toContain('hunter2');
    }
  });
});

describe('queue_url in the configuration', () => {
  it('comes from config.json or AGENT_ASYNC_QUEUE_URL, and is off by default', () => {
    const paths = spoolPaths(home);
    expect(queueUrlOf(loadConfig(paths, {}))).toBeNull();
    expect(queueUrlOf(loadConfig(paths, { AGENT_ASYNC_QUEUE_URL: 'postgres://aa@db/q' }))).toBe('postgres://aa@db/q');
    fs.writeFileSync(paths.config, JSON.stringify({ queue_url: 'postgres://aa@db/from_file' }));
    expect(queueUrlOf(loadConfig(paths, {}))).toBe('postgres://aa@db/from_file');
  });

  it('refuses a password in it, without repeating it', () => {
    const paths = spoolPaths(home);
    fs.writeFileSync(paths.config, JSON.stringify({ queue_url: 'postgres://aa:hunter2@db/q' }));
    expect(() => loadConfig(paths, {})).toThrow(UserError);
    expect(() => loadConfig(paths, {})).toThrow(/queue_url: must not contain the password .* ~\/\.pgpass or the file PGPASSFILE names/);
    fs.writeFileSync(paths.config, '{}');
    let message = '';
    try {
      loadConfig(paths, { AGENT_ASYNC_QUEUE_URL: 'postgres://aa@db/q?password=hunter2' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^environment \(AGENT_ASYNC_\*\): queue_url: must not contain the password/);
    expect(message).not.toContain('hunter2');
  });
});

describe('which runner takes which job', () => {
  const runner = (over: Partial<RunnerView>): RunnerView => ({
    host: 'a', epoch: 1, state: 'active', live: true, pid: 1, labels: [], agents: ['exec'], capacity: 2, load: 0,
    leaseMs: 15_000, leaseRemainingMs: 10_000, heartbeatAt: '2026-01-01T00:00:00.000Z', version: 'x', features: [...RUNNER_FEATURES], ...over,
  });

  it('runs a job without isolation where it was submitted, an isolated one anywhere, a pinned one where pinned', () => {
    expect(requirementsFor({ agent: 'codex', submittedHost: 'laptop', isolated: false })).toEqual({ agent: 'codex', host: 'laptop', labels: [], features: [] });
    expect(requirementsFor({ agent: 'codex', submittedHost: 'laptop', isolated: true, labels: ['gpu', 'gpu', 'big-ram'] })).toEqual({ agent: 'codex', host: null, labels: ['big-ram', 'gpu'], features: [] });
    expect(requirementsFor({ agent: 'codex', submittedHost: 'laptop', isolated: false, host: 'gpu-box' }).host).toBe('gpu-box');
    expect(() => requirementsFor({ agent: 'exec', submittedHost: 'a', isolated: false, host: '-rf' })).toThrow(/^host: "-rf" is not a host name/);
    expect(() => requirementsFor({ agent: 'exec', submittedHost: 'a', isolated: false, labels: ['GPU'] })).toThrow(/^labels\[0\]: "GPU" is not a label/);
    expect(() => requirementsFor({ agent: 'exec', submittedHost: 'a', isolated: false, labels: 'gpu' })).toThrow(/^labels: must be a list/);
  });

  it('matches agent, host and labels of a live runner', () => {
    const needs = { agent: 'exec', host: null, labels: ['gpu'], features: [] };
    expect(canTake(runner({ labels: ['gpu', 'x'] }), needs)).toBe(true);
    expect(canTake(runner({ labels: ['x'] }), needs)).toBe(false);
    expect(canTake(runner({ labels: ['gpu'], live: false }), needs)).toBe(false);
    expect(canTake(runner({ labels: ['gpu'], agents: ['codex'] }), needs)).toBe(false);
    expect(canTake(runner({ labels: ['gpu'] }), { ...needs, host: 'b' })).toBe(false);
  });

  it('explains a pinned job on a host that lacks the agent or the labels', () => {
    expect(whyPending({ agent: 'codex', host: 'a', labels: [], features: [] }, [runner({})]).message).toBe('host "a" has no codex CLI (it has: exec); install it there');
    expect(whyPending({ agent: 'exec', host: 'a', labels: ['gpu'], features: [] }, [runner({})])).toEqual({ code: 'labels_missing', message: 'host "a" lacks the labels gpu (it has: none)' });
    expect(whyPending({ agent: 'exec', host: 'a', labels: [], features: [] }, [runner({ load: 2 })])).toEqual({ code: 'busy', message: 'waiting for a free slot on host "a" (2/2 taken)' });
  });

  it('gives a job whose snapshot is on a git remote only to a runner whose code names isolated-remote, and says why it waits', () => {
    const needs = requirementsFor({ agent: 'exec', submittedHost: 'a', isolated: true, fromRemote: true });
    expect(needs).toEqual({ agent: 'exec', host: null, labels: [], features: ['isolated-remote'] });
    const older = runner({ host: 'old', features: [], version: '0.0.9' });
    expect(canTake(runner({}), needs)).toBe(true);
    expect(canTake(older, needs)).toBe(false);
    expect(canTake(older, { ...needs, features: [] })).toBe(true);
    expect(whyPending(needs, [older])).toEqual({
      code: 'runner_outdated',
      message: 'the job needs isolated-remote (an isolated job whose snapshot is on a git remote), which the agent-async of old 0.0.9 cannot run; upgrade agent-async there',
    });
    expect(whyPending({ ...needs, host: 'old' }, [older]).code).toBe('runner_outdated');
    expect(whyPending(needs, [older, runner({ load: 2 })])).toEqual({ code: 'busy', message: 'waiting for a free slot (a 2/2)' });
  });
});
