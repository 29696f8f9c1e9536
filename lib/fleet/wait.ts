import { isTerminal } from '../spool/state.js';
import type { FleetQueue } from './fleet.js';
import { outputSize } from './output.js';
import { readJobs, type FleetSnapshot } from './queue.js';
import { CHANNELS } from './schema.js';

/**
 * Waiting from any host: LISTEN (through the process's one listener) for a hint, re-read the
 * rows on every hint, after every reconnect and on a slow safety poll with jitter. A wake-up
 * is never missed across a dropped connection or a PostgreSQL restart: notifications sent
 * meanwhile are lost, but the re-read after the reconnect sees the change they announced.
 */
export type WakeReason = 'initial' | 'notify' | 'resync' | 'poll' | 'timeout' | 'abort';

export interface FleetWaitOptions {
  timeoutMs: number;
  /** The safety poll (jittered ±20%). */
  pollMs: number;
  signal?: AbortSignal;
  /** How long to wait for LISTEN to be in place before the first read (then the poll covers). */
  armTimeoutMs?: number;
  /** Called once listening and the first read are done (the wait is in place). */
  onArmed?: () => void;
}

interface Watch<T> {
  relevant: (channel: string, payload: string) => boolean;
  /** Reads and decides: a value ends the wait. Throwing (server away) is retried later. */
  check: () => Promise<T | undefined>;
}

interface WatchEnd<T> {
  value: T | undefined;
  wokeBy: WakeReason;
}

/** A wait that cannot wait (no time left, or aborted already): one read, no LISTEN connection. */
async function readOnce<T>(watch: Watch<T>, options: FleetWaitOptions): Promise<WatchEnd<T>> {
  const value = await watch.check(); // unguarded, as every first read
  return { value, wokeBy: value !== undefined ? 'initial' : options.timeoutMs <= 0 ? 'timeout' : 'abort' };
}

async function watchUntil<T>(queue: FleetQueue, watch: Watch<T>, options: FleetWaitOptions): Promise<WatchEnd<T>> {
  if (options.timeoutMs <= 0 || options.signal?.aborted) return readOnce(watch, options);
  const listener = queue.listener();
  await listener.armed(Math.max(0, Math.min(options.timeoutMs, options.armTimeoutMs ?? 5_000)));
  let finished = false;
  let reading = false;
  let queued: WakeReason | undefined;
  let settle: (end: WatchEnd<T>) => void = () => undefined;
  // one read at a time; wake-ups that arrive meanwhile fold into one more read
  const read = async (why: WakeReason): Promise<void> => {
    if (finished) return;
    if (reading) {
      queued ??= why;
      return;
    }
    reading = true;
    try {
      const value = await watch.check();
      if (value !== undefined) settle({ value, wokeBy: why });
    } catch {
      // the server is away: the resync after the reconnect (or the poll) reads again
    } finally {
      reading = false;
      const next = queued;
      queued = undefined;
      if (next && !finished) void read(next);
    }
  };
  // subscribed (and LISTENing) before the first read, so nothing falls between the two
  const stopNotify = listener.onNotification((channel, payload) => {
    if (watch.relevant(channel, payload)) void read('notify');
  });
  const stopResync = listener.onResync(() => void read('resync'));
  const unsubscribe = (): void => {
    finished = true;
    stopNotify();
    stopResync();
  };
  let first: T | undefined;
  reading = true;
  try {
    first = await watch.check(); // unguarded: an unreachable queue at the start is the caller's error
  } catch (error) {
    unsubscribe();
    throw error;
  } finally {
    reading = false;
  }
  const early = first !== undefined ? 'initial' : options.signal?.aborted ? 'abort' : undefined;
  if (early) {
    unsubscribe();
    return { value: first, wokeBy: early };
  }
  options.onArmed?.();

  return new Promise<WatchEnd<T>>((resolve) => {
    let pollTimer: NodeJS.Timeout | undefined;
    settle = (end) => {
      if (finished) return;
      unsubscribe();
      clearTimeout(deadline);
      clearTimeout(pollTimer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(end);
    };
    const schedulePoll = (): void => {
      pollTimer = setTimeout(() => {
        void read('poll').finally(() => {
          if (!finished) schedulePoll();
        });
      }, options.pollMs * (0.8 + Math.random() * 0.4));
    };
    const onAbort = (): void => settle({ value: undefined, wokeBy: 'abort' });
    const deadline = setTimeout(() => settle({ value: undefined, wokeBy: 'timeout' }), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    schedulePoll();
    // a hint that came during the first read
    const missed = queued;
    queued = undefined;
    if (missed) void read(missed);
  });
}

export interface FleetAwaitResult {
  /** Jobs that ended (or are gone or unreadable) when the wait returned. */
  settled: FleetSnapshot[];
  open: FleetSnapshot[];
  timedOut: boolean;
  aborted: boolean;
  /** What ended the wait: the first read, a notification, the re-read after a reconnect, the poll. */
  wokeBy: WakeReason;
}

const isSettled = (snap: FleetSnapshot): boolean => snap.kind !== 'ok' || isTerminal(snap.job.state.status);

/**
 * Resolves as soon as one of `ids` has ended (or is gone), with every one ended by then, or
 * when the timeout or the abort signal ends the wait. The first read is not guarded: an
 * unreachable queue at the start is the caller's clear error.
 */
export async function awaitAnyEnded(queue: FleetQueue, ids: readonly string[], options: FleetWaitOptions): Promise<FleetAwaitResult> {
  const wanted = new Set(ids);
  let last: FleetSnapshot[] = ids.map((id) => ({ id, kind: 'missing' }));
  const end = await watchUntil(queue, {
    relevant: (channel, payload) => channel === CHANNELS.job && wanted.has(payload.split(' ')[0] ?? ''),
    check: async () => {
      last = await readJobs(queue.db, ids);
      return last.some(isSettled) || ids.length === 0 ? last : undefined;
    },
  }, options);
  return {
    settled: last.filter(isSettled),
    open: last.filter((snap) => !isSettled(snap)),
    timedOut: end.wokeBy === 'timeout',
    aborted: end.wokeBy === 'abort',
    wokeBy: end.wokeBy,
  };
}

export interface OutputWaitResult {
  /** Bytes stored now. */
  size: number;
  /** The job has ended (nothing more will come once `size` is read). */
  ended: boolean;
  wokeBy: WakeReason;
}

/** For `logs -f` from any host: resolves when the job has output beyond `offset`, or has ended. */
export async function waitForOutput(queue: FleetQueue, id: string, offset: number, options: FleetWaitOptions): Promise<OutputWaitResult> {
  let size = 0;
  let ended = false;
  const end = await watchUntil(queue, {
    relevant: (channel, payload) => (channel === CHANNELS.output || channel === CHANNELS.job) && payload.split(' ')[0] === id,
    check: async () => {
      const [snap] = await readJobs(queue.db, [id]);
      ended = !snap || isSettled(snap);
      size = await outputSize(queue.db, id);
      return size > offset || ended ? true : undefined;
    },
  }, options);
  return { size, ended, wokeBy: end.wokeBy };
}
