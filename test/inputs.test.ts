import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../lib/errors.js';
import {
  argv, awaitAnyInput, continueInput, gcInput, listInput, notifyInput, outputInput, parseField, parseInput, submitInput, waitInput, wholeNumber,
} from '../lib/inputs.js';

/** The operation schemas: what each refuses, and how the refusal names the field (or the caller's name for it). */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-inputs-'));
const file = path.join(dir, 'file.txt');
fs.writeFileSync(file, 'x');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const ID = '0hofwkskze9k7j2qzbazu7a';

function refusal(run: () => unknown): UserError {
  try {
    run();
  } catch (error) {
    if (error instanceof UserError) return error;
    throw error;
  }
  throw new Error('not refused');
}

describe('operation schemas', () => {
  const cases: Array<[string, () => unknown, RegExp, string]> = [
    ['a relative cwd', () => parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: 'rel' }), /^cwd: must be an absolute path .* got the relative path "rel"$/, 'cwd'],
    ['a missing cwd', () => parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: '/no/such/dir' }), /^cwd: "\/no\/such\/dir" does not exist/, 'cwd'],
    ['a file as cwd', () => parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: file }), /^cwd: ".*file\.txt" is a file, not a directory$/, 'cwd'],
    ['an empty argv', () => parseInput(submitInput, { agent: 'exec', argv: [], cwd: dir }), /^argv: is required: the command and its arguments/, 'argv'],
    ['an empty command', () => parseInput(submitInput, { agent: 'exec', argv: [' ', 'x'], cwd: dir }), /^argv\[0\]: the command must not be empty$/, 'argv'],
    ['a NUL in an argument', () => parseInput(submitInput, { agent: 'exec', argv: ['echo', 'a\0b'], cwd: dir }), /^argv\[1\]: must not contain NUL characters$/, 'argv'],
    ['a blank prompt', () => parseInput(submitInput, { agent: 'codex', prompt: '  ', cwd: dir }), /^prompt: is required: a non-empty text/, 'prompt'],
    ['a model that looks like a flag', () => parseInput(submitInput, { agent: 'codex', prompt: 'x', cwd: dir, model: '-rf' }), /^model: "-rf" is not a model name/, 'model'],
    ['a zero limit', () => parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: dir, timeout_seconds: 0 }), /^timeout_seconds: must be above 0; got 0$/, 'timeout_seconds'],
    ['101 context files', () => parseInput(submitInput, { agent: 'codex', prompt: 'x', cwd: dir, context_files: Array(101).fill('a') }), /^context_files: has 101 entries; at most 100/, 'context_files'],
    ['an unknown key', () => parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: dir, colour: 'blue' }), /^colour: not a parameter$/, 'colour'],
    ['a bad job id', () => parseInput(waitInput, { job_id: '../x' }), /^job_id: "\.\.\/x" is not a job id: expected 23 lowercase letters and digits/, 'job_id'],
    ['a missing job id', () => parseInput(waitInput, {}), /^job_id: is required \(string\)$/, 'job_id'],
    ['a bad id in a list', () => parseInput(awaitAnyInput, { job_ids: [ID, 'nope'] }), /^job_ids\[1\]: "nope" is not a job id/, 'job_ids'],
    ['a wait that is not a number', () => parseInput(waitInput, { job_id: ID, timeout_seconds: 'soon' }), /^timeout_seconds: Invalid input: expected number, received string$/, 'timeout_seconds'],
    ['a limit out of range', () => parseInput(listInput, { limit: 1001 }), /^limit: must be a whole number from 1 to 1000; got "1001"$/, 'limit'],
    ['an unknown status', () => parseInput(listInput, { status: 'weird' }), /^status: "weird" is not a status; allowed: pending, running, done, error, cancelled$/, 'status'],
    ['a page too large', () => parseInput(outputInput, { job_id: ID, max_bytes: 100_000 }), /^max_bytes: must be from 1 to 65536; got "100000"$/, 'max_bytes'],
    ['a summary too long', () => parseInput(notifyInput, { job_id: ID, summary: 'x'.repeat(70_000) }), /^summary: is 70000 bytes; at most 65536 are allowed$/, 'summary'],
    ['a negative keep', () => parseInput(gcInput, { keep: -1 }), /^keep: must be a whole number, 0 or more; got "-1"$/, 'keep'],
  ];
  for (const [name, run, message, field] of cases) {
    it(`refuses ${name}, naming the field`, () => {
      const error = refusal(run);
      expect(error.message).toMatch(message);
      expect(error).toMatchObject({ code: 'bad_input', field });
    });
  }

  it('names a field by the caller\'s name for it (a CLI flag), and an unknown one as a parameter of the operation', () => {
    const flags = { names: { job_id: 'id', timeout_seconds: 'timeout' } };
    expect(refusal(() => parseInput(continueInput, { job_id: '/', prompt: 'x' }, flags))).toMatchObject({ message: expect.stringMatching(/^id: "\/" is not a job id/), field: 'id' });
    expect(refusal(() => parseInput(continueInput, { job_id: ID, prompt: 'x', timeout_seconds: -1 }, flags)).message).toBe('timeout: must be above 0; got -1');
    expect(refusal(() => parseInput(waitInput, { job_id: ID, extra: 1 }, { operation: 'job_wait' })).message).toBe('extra: not a parameter of job_wait');
    expect(refusal(() => parseInput(waitInput, {}, { operation: 'job_wait' })).message).toBe('job_id: is required (string) for job_wait');
  });

  it('checks a lone value (a config setting) by the same rules, under its own name', () => {
    expect(parseField(argv, ['make', 'setup'], 'worktree.setup')).toEqual(['make', 'setup']);
    expect(refusal(() => parseField(argv, [''], 'worktree.setup')).message).toBe('worktree.setup[0]: the command must not be empty');
    expect(refusal(() => parseField(wholeNumber(1, 10), 11, 'max_bytes')).message).toBe('max_bytes: must be a whole number from 1 to 10; got "11"');
  });

  it('fills the defaults and normalizes cwd', () => {
    expect(parseInput(waitInput, { job_id: ID })).toEqual({ job_id: ID, timeout_seconds: 50 });
    expect(parseInput(listInput, {})).toEqual({ limit: 20 });
    expect(parseInput(outputInput, { job_id: ID })).toEqual({ job_id: ID, offset: 0, max_bytes: 32768 });
    expect(parseInput(gcInput, {})).toEqual({ dry_run: false, reindex: false, branches: false });
    expect(parseInput(submitInput, { agent: 'exec', argv: ['true'], cwd: `${dir}/./` }).cwd).toBe(`${dir}/`);
  });
});
