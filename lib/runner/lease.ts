import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { z } from 'zod';
import { errnoCode } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../spool/fsx.js';
import { DIR_MODE, type SpoolPaths } from '../spool/layout.js';
import { liveness, selfIdentity } from './processes.js';

/**
 * Leader election of the runner through proper-lockfile (`runner.lock/`, refreshed mtime).
 * Leadership is only an optimisation: the exactly-once start of a job rests on its claim
 * (`mkdir claim.<attempt>`), because a stale takeover can crown two leaders at once
 * (moxystudio/node-proper-lockfile#121). Every process must use these same numbers.
 */
export const LEASE = {
  staleMs: 10_000,
  updateMs: 1_000,
  /** A lock whose recorded holder is dead is taken over once it is this old, without
   * waiting for `staleMs`; a freshly taken lock is younger, so it is never mistaken. */
  deadHolderAgeMs: 2_500,
};

export const runnerInfoSchema = z.object({
  schema_version: z.literal(1),
  pid: z.number().int().positive(),
  start_time: z.string().nullable(),
  host: z.string(),
  pid_ns: z.string().nullable().optional(),
  started_at: z.string(),
  epoch: z.number().int().min(0),
  version: z.string(),
  state: z.enum(['leading', 'stopped']),
});
export type RunnerInfo = z.infer<typeof runnerInfoSchema>;

export function readRunnerInfo(paths: SpoolPaths): RunnerInfo | undefined {
  const read = readJsonFile(paths.runnerInfo);
  if (read.kind !== 'ok') return undefined;
  const parsed = runnerInfoSchema.safeParse(read.value);
  return parsed.success ? parsed.data : undefined;
}

/**
 * The epoch in runner.json, re-read only when the file was replaced (it always is, by rename):
 * the runner asks on every scheduling tick.
 */
function epochWatcher(paths: SpoolPaths): () => number | undefined {
  let seen: { key: string; epoch: number | undefined } | undefined;
  return () => {
    const stat = fs.statSync(paths.runnerInfo, { bigint: true, throwIfNoEntry: false });
    if (!stat) return undefined;
    const key = `${stat.ino}:${stat.mtimeNs}:${stat.ctimeNs}:${stat.size}`;
    if (seen?.key !== key) seen = { key, epoch: readRunnerInfo(paths)?.epoch };
    return seen.epoch;
  };
}

function lockAgeMs(paths: SpoolPaths): number | undefined {
  try {
    return Date.now() - fs.statSync(paths.runnerLock).mtimeMs;
  } catch {
    return undefined;
  }
}

/** True when a runner holds the lease and its process is alive. */
export function leaderAlive(paths: SpoolPaths): boolean {
  const info = readRunnerInfo(paths);
  if (!info || info.state !== 'leading') return false;
  const age = lockAgeMs(paths);
  if (age === undefined || age > LEASE.staleMs) return false;
  return liveness(info) !== 'dead';
}

/**
 * What says that runner.lock/ is still the one this process took: the same folder (device and
 * inode), an mtime this process set, and its own epoch in runner.json. After a long pause (a
 * laptop lid closed, SIGSTOP) another runner may have taken the lock over; proper-lockfile's
 * release, and its exit handler, would then remove that runner's lock.
 */
class LockOwnership {
  private folder: { dev: number; ino: number } | null = null;
  private readonly mtimes: number[] = [];
  epoch: number | null = null;

  constructor(private readonly paths: SpoolPaths) {}

  get held(): boolean {
    return this.folder !== null;
  }

  noteMtime(mtime: Date): void {
    this.mtimes.push(mtime.getTime());
    if (this.mtimes.length > 4) this.mtimes.shift();
  }

  /** Right after proper-lockfile made the folder: it is ours as it is now. */
  took(): void {
    const stat = fs.statSync(this.paths.runnerLock);
    this.folder = { dev: stat.dev, ino: stat.ino };
    this.noteMtime(stat.mtime);
  }

  stillOurs(): boolean {
    const stat = fs.statSync(this.paths.runnerLock, { throwIfNoEntry: false });
    if (!stat || !this.folder || stat.dev !== this.folder.dev || stat.ino !== this.folder.ino) return false;
    if (!this.mtimes.includes(stat.mtime.getTime())) return false;
    return this.epoch === null || readRunnerInfo(this.paths)?.epoch === this.epoch;
  }

  /**
   * The filesystem proper-lockfile works through: Node's, except that once the lock is held its
   * folder is removed only while it is still ours, and the mtimes it sets are noted.
   */
  filesystem(): Record<string, unknown> {
    const lockPath = path.resolve(this.paths.runnerLock);
    const mayRemove = (target: string): boolean => !this.held || path.resolve(target) !== lockPath || this.stillOurs();
    return {
      mkdir: fs.mkdir,
      stat: fs.stat,
      realpath: fs.realpath,
      utimes: (target: string, atime: Date, mtime: Date, callback: (error: Error | null) => void) => {
        if (path.resolve(target) === lockPath) this.noteMtime(mtime);
        fs.utimes(target, atime, mtime, callback);
      },
      rmdir: (target: string, callback: (error: Error | null) => void) => {
        if (mayRemove(target)) fs.rmdir(target, callback);
        else callback(null);
      },
      rmdirSync: (target: string) => {
        if (mayRemove(target)) fs.rmdirSync(target);
      },
    };
  }
}

export interface Leadership {
  readonly epoch: number;
  isLeading(): boolean;
  /** Called once if the lease is lost to another process (never throws). */
  onLost(listener: (reason: string) => void): void;
  release(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface AcquireOptions {
  version: string;
  log: (message: string) => void;
}

/**
 * Becomes the leader, or returns null when a live runner already leads. A lock left by a
 * dead runner on this host is taken over at once; one of unknown origin after `staleMs`.
 */
export async function acquireLeadership(paths: SpoolPaths, options: AcquireOptions): Promise<Leadership | null> {
  const giveUpAt = Date.now() + LEASE.staleMs + 3_000;
  let leading = false;
  let lostReason: string | undefined;
  const lostListeners: Array<(reason: string) => void> = [];
  const markLost = (reason: string): void => {
    if (!leading) return;
    leading = false;
    lostReason = reason;
    for (const listener of lostListeners) listener(reason);
  };

  const ownership = new LockOwnership(paths);
  const lockFs = ownership.filesystem();
  for (;;) {
    let release: (() => Promise<void>) | undefined;
    try {
      release = await lockfile.lock(paths.home, {
        lockfilePath: paths.runnerLock,
        realpath: false,
        stale: LEASE.staleMs,
        update: LEASE.updateMs,
        retries: 0,
        fs: lockFs,
        onCompromised: (error: Error) => markLost(`lease compromised: ${error.message}`),
      });
    } catch (error) {
      if (errnoCode(error) !== 'ELOCKED') throw error;
    }
    if (release) {
      leading = true;
      ownership.took();
      // made by this process just now, so its mode is ours to set
      fs.chmodSync(paths.runnerLock, DIR_MODE);
      const previous = readRunnerInfo(paths);
      const epoch = (previous?.epoch ?? 0) + 1;
      const me = selfIdentity();
      const info: RunnerInfo = {
        schema_version: 1,
        pid: me.pid,
        start_time: me.start_time,
        host: me.host,
        pid_ns: me.pid_ns ?? null,
        started_at: new Date().toISOString(),
        epoch,
        version: options.version,
        state: 'leading',
      };
      writeJsonAtomic(paths.runnerInfo, info, 'folder', { replaceFolder: true });
      ownership.epoch = epoch;
      const releaseLock = release;
      const currentEpoch = epochWatcher(paths);
      return {
        epoch,
        isLeading: () => leading && currentEpoch() === epoch,
        onLost: (listener) => {
          if (lostReason !== undefined) listener(lostReason);
          else lostListeners.push(listener);
        },
        // Only what is still ours is released: a runner resumed after a long pause finds
        // another one leading, and leaves its lock and runner.json alone.
        release: async () => {
          const wasLeading = leading;
          leading = false;
          if (ownership.stillOurs()) {
            if (wasLeading) writeJsonAtomic(paths.runnerInfo, { ...info, state: 'stopped' }, 'file', { replaceFolder: true });
          } else {
            options.log(`not releasing ${paths.runnerLock}: another runner holds it now`);
          }
          await releaseLock().catch(() => undefined);
        },
      };
    }

    const holder = readRunnerInfo(paths);
    const holderLiveness = holder ? liveness(holder) : 'unknown';
    if (holder && holder.state === 'leading' && holderLiveness === 'alive') return null;
    const age = lockAgeMs(paths);
    if (holder && holderLiveness === 'dead' && age !== undefined && age > LEASE.deadHolderAgeMs) {
      options.log(`taking over the lease of dead runner pid ${holder.pid} (epoch ${holder.epoch})`);
      try {
        fs.rmdirSync(paths.runnerLock);
      } catch {
        // someone else removed or retook it; the next lock attempt tells
      }
      continue;
    }
    if (Date.now() > giveUpAt) return null;
    await sleep(100);
  }
}
