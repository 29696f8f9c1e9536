import path from 'node:path';
import fs from 'node:fs';
import chokidar from 'chokidar';
import { JOB_FILES, jobDir, type SpoolPaths } from './layout.js';
import { isTerminal, type JobState } from './state.js';
import { readSnapshot as snapshot, type JobSnapshot } from './store.js';

/**
 * Waiting for jobs to end, from any process. An event is only a hint: every event on
 * `state.json` re-reads it, a trailing re-read follows each burst (chokidar 4/5 drop a
 * `change` that follows another within 50 ms with no trailing event, paulmillr/chokidar#1455),
 * the state is read once right after the watcher is armed, and a slow safety poll covers
 * everything else (dropped events, inotify overflow, network filesystems).
 */

/** chokidar's change throttle is 50 ms; re-read once after it closes. */
const TRAILING_READ_MS = 60;

export interface WaitOptions {
  timeoutMs: number;
  pollMs: number;
  watchMode?: WatchMode;
  signal?: AbortSignal;
  /** Called on every safety poll with the states read (e.g. to restart a dead runner). */
  onPoll?: (states: JobState[]) => void;
  /** Called once the folder watch is in place (or has failed, leaving the poll). */
  onArmed?: () => void;
}

/** A snapshot that a waiter should return at once: terminal, gone or unreadable. */
export function isSettled(snap: JobSnapshot): boolean {
  return snap.kind !== 'ok' || isTerminal(snap.state.status);
}

export interface AwaitResult {
  /** Jobs that are settled (terminal, missing or corrupt) at the moment the wait returned. */
  settled: JobSnapshot[];
  /** The others, with their current state. */
  open: JobSnapshot[];
  timedOut: boolean;
  aborted: boolean;
}

/**
 * Resolves as soon as at least one of `ids` is settled, with every one that is settled at
 * that moment (so completions that land together are reported together), or when the
 * timeout or the abort signal ends the wait.
 */
export async function awaitAnySettled(paths: SpoolPaths, ids: readonly string[], options: WaitOptions): Promise<AwaitResult> {
  const readAll = (): JobSnapshot[] => ids.map((id) => snapshot(paths, id));
  const split = (snaps: JobSnapshot[], timedOut: boolean, aborted: boolean): AwaitResult => ({
    settled: snaps.filter(isSettled),
    open: snaps.filter((snap) => !isSettled(snap)),
    timedOut,
    aborted,
  });

  const first = readAll();
  if (first.some(isSettled) || ids.length === 0) return split(first, false, false);
  if (options.timeoutMs <= 0) return split(first, true, false);
  if (options.signal?.aborted) return split(first, false, true);

  return new Promise<AwaitResult>((resolve) => {
    let finished = false;
    let trailing: NodeJS.Timeout | undefined;
    let closeWatcher: (() => Promise<void>) | undefined;

    const finish = (result: AwaitResult): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      clearInterval(poll);
      clearTimeout(trailing);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(result);
      // closed once the answer is on its way (its syscall is not in the wake-up's path)
      setImmediate(() => void closeWatcher?.());
    };
    const check = (): JobSnapshot[] => {
      const snaps = readAll();
      if (snaps.some(isSettled)) finish(split(snaps, false, false));
      return snaps;
    };
    const onEvent = (): void => {
      if (finished) return;
      check();
      clearTimeout(trailing);
      trailing = setTimeout(check, TRAILING_READ_MS);
    };
    const onAbort = (): void => finish(split(readAll(), false, true));

    const deadline = setTimeout(() => finish(split(readAll(), true, false)), options.timeoutMs);
    const poll = setInterval(() => {
      const snaps = check();
      if (!finished && options.onPoll) {
        options.onPoll(snaps.flatMap((snap) => (snap.kind === 'ok' ? [snap.state] : [])));
      }
    }, options.pollMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    watchJobFolders(paths, ids, onEvent, [JOB_FILES.state], options.watchMode)
      .then((close) => {
        closeWatcher = close;
        if (finished) void close();
        else onEvent();
      })
      .catch(() => {
        // no watcher (e.g. out of inotify watches): the safety poll still ends the wait
      })
      .finally(() => options.onArmed?.());
  });
}

export interface WaitResult {
  snapshot: JobSnapshot;
  timedOut: boolean;
  aborted: boolean;
}

export async function waitForJob(paths: SpoolPaths, id: string, options: WaitOptions): Promise<WaitResult> {
  const result = await awaitAnySettled(paths, [id], options);
  const snap = result.settled[0] ?? result.open[0] ?? snapshot(paths, id);
  return { snapshot: snap, timedOut: result.timedOut, aborted: result.aborted };
}

/**
 * How waits notice changes: `native` is one fs.watch per job folder (cheapest, and it sees
 * every rename); `chokidar` is chokidar 5 on the folder; `poll` uses no watcher at all, only
 * the re-reads (for network filesystems, where a change made from another host raises no
 * event). Measured while a job printed 300 MB: a waiting server spent 5 CPU ticks with
 * `native` and 88 with `chokidar`, which stats files on the folder's every event.
 */
export type WatchMode = 'native' | 'chokidar' | 'poll';

/**
 * Watches job folders (not the `state.json` inode, which a rename replaces) and calls
 * `onChange` for changes to the files a waiter cares about. Resolves once armed.
 */
export async function watchJobFolders(
  paths: SpoolPaths,
  ids: readonly string[],
  onChange: (id: string, file: string) => void,
  files: readonly string[] = [JOB_FILES.state],
  mode: WatchMode = 'native',
): Promise<() => Promise<void>> {
  if (mode === 'poll') return () => Promise.resolve();
  if (mode === 'chokidar') return watchWithChokidar(paths, ids, onChange, files);
  const close = watchFoldersNative(paths, ids, onChange, files);
  return () => {
    close();
    return Promise.resolve();
  };
}

/**
 * One plain fs.watch per job folder, armed when this returns. An event without a file name
 * is passed on as the first of `files`. Returns the function that closes the watches.
 */
export function watchFoldersNative(
  paths: SpoolPaths,
  ids: readonly string[],
  onChange: (id: string, file: string) => void,
  files: readonly string[],
): () => void {
  const wanted = new Set(files);
  const watchers: fs.FSWatcher[] = [];
  for (const id of ids) {
    try {
      const watcher = fs.watch(jobDir(paths, id), (_event, name) => {
        if (name === null) onChange(id, files[0]!);
        else if (wanted.has(name)) onChange(id, name);
      });
      watcher.on('error', () => undefined);
      watchers.push(watcher);
    } catch {
      // gone or unwatchable: the caller's re-reads cover it
    }
  }
  return () => {
    for (const watcher of watchers) watcher.close();
  };
}

async function watchWithChokidar(
  paths: SpoolPaths,
  ids: readonly string[],
  onChange: (id: string, file: string) => void,
  files: readonly string[],
): Promise<() => Promise<void>> {
  const wanted = new Set(files);
  const roots = new Set(ids.map((id) => jobDir(paths, id)));
  const watcher = chokidar.watch([...roots], {
    ignoreInitial: true,
    depth: 0,
    ignored: (file: string) => !roots.has(file) && !wanted.has(path.basename(file)),
  });
  watcher.on('all', (_event: string, file: string) => {
    const name = path.basename(file);
    if (wanted.has(name)) onChange(path.basename(path.dirname(file)), name);
  });
  watcher.on('error', () => {
    // the caller's safety poll covers a failing watcher
  });
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  // chokidar 5 re-watches a replaced file right after emitting its change; a close made
  // inside that emit would leak the new fs.watch handle, so closing waits a turn.
  return () => new Promise<void>((resolve) => setImmediate(() => void watcher.close().then(resolve, resolve)));
}
