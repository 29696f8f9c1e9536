import { describe, expect, it } from 'vitest';
import { exclusionKey, planTick, type ActiveJob, type ClaimStatus, type OwnJob, type TickPlan } from '../lib/runner/core/schedule.js';
import { jobRequest } from './helpers/job-request.mjs';

/** planTick, table by table: what a scheduling tick decides from what the runner found. */

const pending = (id: string, key: string | null = null): ActiveJob => ({ id, holdsSlot: false, key });
const running = (id: string, key: string | null = null, orphaned = false): ActiveJob => ({ id, holdsSlot: true, key, orphaned });
const own = (key: string | null, slotFree = false): OwnJob => ({ key, slotFree });

interface Case {
  concurrency: number;
  fullScan?: boolean;
  own?: OwnJob[];
  active: ActiveJob[];
  /** Jobs with a cancel request. */
  cancelled?: string[];
  /** Claims other than free with attempt 1; null: the claims cannot be read. */
  claims?: Record<string, ClaimStatus | null>;
  expected: Partial<TickPlan> & { dispatched?: string[] };
  /** The jobs whose cancel request may be looked at (the rest must not be: one lstat each). */
  asked?: string[];
}

const TABLE: Array<[string, Case]> = [
  ['FIFO up to the concurrency', { concurrency: 2, active: [pending('a'), pending('b'), pending('c')], expected: { dispatched: ['a', 'b'], saturated: true }, asked: ['a', 'b'] }],
  ['slots taken by our own supervisors count', { concurrency: 2, own: [own(null)], active: [pending('a'), pending('b')], expected: { dispatched: ['a'], saturated: true } }],
  ['an own job whose worker is gone frees its slot', { concurrency: 1, own: [own('/w', true)], active: [pending('a', '/w')], expected: { dispatched: ['a'] } }],
  ['an own isolated job whose worker is gone keeps its worktree\'s key while its end commits and removes the worktree', { concurrency: 2, own: [own('worktree:w1', true)], active: [pending('a', 'worktree:w1'), pending('b', '/x')], expected: { dispatched: ['b'] } }],
  ['a running job holds a slot', { concurrency: 1, active: [running('r'), pending('a')], expected: { dispatched: [], saturated: true }, asked: [] }],
  ['nothing to do', { concurrency: 4, active: [], expected: { dispatched: [], cancel: [], finalize: [], saturated: false } }],
  ['one key never runs twice side by side; other keys go on', { concurrency: 4, active: [pending('a', '/w'), pending('b', '/w'), pending('c', '/x')], expected: { dispatched: ['a', 'c'], saturated: false } }],
  ['a running job and an own one hold their keys', { concurrency: 4, own: [own('/x')], active: [running('r', '/w'), pending('a', '/w'), pending('b', '/x'), pending('c', '/y')], expected: { dispatched: ['c'] } }],
  ['jobs without a key exclude nothing', { concurrency: 3, active: [running('r'), pending('a'), pending('b')], expected: { dispatched: ['a', 'b'], saturated: true } }],
  ['a running job whose supervisor is gone is finalized, and holds its slot meanwhile', { concurrency: 1, active: [running('r', null, true), pending('a')], expected: { finalize: ['r'], dispatched: [] } }],
  ['a cancelled job is cancelled, and the next takes its slot', { concurrency: 1, active: [pending('a'), pending('b')], cancelled: ['a'], expected: { cancel: ['a'], dispatched: ['b'] } }],
  ['between polls a waiting job\'s cancel request is not looked at', { concurrency: 1, active: [running('r'), pending('a'), pending('b')], cancelled: ['b'], expected: { cancel: [], dispatched: [] }, asked: [] }],
  ['on the slow poll every pending job\'s cancel request is', { concurrency: 1, fullScan: true, active: [running('r'), pending('a'), pending('b')], cancelled: ['b'], expected: { cancel: ['b'], dispatched: [] }, asked: ['a', 'b'] }],
  ['a job whose key is busy is passed over, its cancel request not looked at between polls', { concurrency: 2, active: [running('r', '/w'), pending('a', '/w'), pending('b')], cancelled: ['a'], expected: { cancel: [], dispatched: ['b'] }, asked: ['b'] }],
  ['a claim someone else holds takes the slot and the key, and is not dispatched', { concurrency: 2, active: [pending('a', '/w'), pending('b', '/w'), pending('c')], claims: { a: { kind: 'held', attempt: 1 } }, expected: { dispatched: ['c'], saturated: true } }],
  ['claims that cannot be read skip the job this tick', { concurrency: 1, active: [pending('a'), pending('b')], claims: { a: null }, expected: { dispatched: ['b'] } }],
  ['the attempt is the claim\'s next one', { concurrency: 1, active: [pending('a')], claims: { a: { kind: 'free', nextAttempt: 3 } }, expected: { dispatch: [{ id: 'a', attempt: 3, key: null }] } }],
];

describe('planTick', () => {
  for (const [name, c] of TABLE) {
    it(name, () => {
      const asked: string[] = [];
      const plan = planTick({ concurrency: c.concurrency, fullScan: c.fullScan ?? false, own: c.own ?? [], active: c.active }, {
        cancelRequested: (id) => {
          asked.push(id);
          return (c.cancelled ?? []).includes(id);
        },
        claim: (id) => {
          const claim = c.claims?.[id];
          return claim === null ? undefined : claim ?? { kind: 'free', nextAttempt: 1 };
        },
      });
      const { dispatched, ...rest } = c.expected;
      if (dispatched) expect(plan.dispatch.map((job) => job.id)).toEqual(dispatched);
      expect(plan).toMatchObject(rest);
      if (c.asked) expect(asked).toEqual(c.asked);
    });
  }
});

describe('exclusionKey', () => {
  it('is the cwd while exclusive_cwd is on, none when it is off', () => {
    const request = jobRequest('exec', ['true'], { cwd: '/work/a' });
    expect(exclusionKey(request, { exclusive_cwd: true })).toBe('/work/a');
    expect(exclusionKey(request, { exclusive_cwd: false })).toBeNull();
  });
});
