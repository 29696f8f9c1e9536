import fs from 'node:fs';
import { errnoCode } from '../errors.js';
import { removeQuietly, tempName } from './fsx.js';
import { isJobId, jobIdTime } from './ids.js';
import { rebuildIndex, removeFromIndex, walkIndex } from './index.js';
import { jobDir, type SpoolPaths } from './layout.js';
import { awaitsWorkerExit, isTerminal } from './state.js';
import { readState, removeFromActive } from './store.js';

/**
 * Removing finished jobs (`agent-async gc`, and the runner's retention): by age of their end
 * or beyond the newest N, never a pending or running job, newest first through the index.
 */

export interface GcOptions {
  olderThanSeconds?: number;
  /** Keep the newest N jobs (pending and running ones are never removed, whatever their rank). */
  keep?: number;
  /** Remove at most this many in one pass. */
  limit?: number;
  dryRun?: boolean;
  reindex?: boolean;
}

export interface GcReport {
  removed: string[];
  kept: number;
  skipped_active: number;
  unreadable: string[];
  reindexed?: { added: number; removed: number };
}

/** A marker younger than this may belong to a job still being published. */
const YOUNG_ID_MS = 60_000;

/** Removes finished jobs older than a cutoff or beyond the newest `keep`; never active ones. */
export function gcJobs(paths: SpoolPaths, options: GcOptions): GcReport {
  const report: GcReport = { removed: [], kept: 0, skipped_active: 0, unreadable: [] };
  if (options.reindex) report.reindexed = rebuildIndex(paths);
  const cutoff = options.olderThanSeconds === undefined ? undefined : Date.now() - options.olderThanSeconds * 1000;
  let rank = 0;
  for (const id of walkIndex(paths, 'newest')) {
    rank += 1;
    // Only candidates are read: beyond the newest `keep`, or created before the cutoff (a job
    // can only have ended after it was created). The kept jobs' states are never opened.
    const beyondKeep = options.keep !== undefined && rank > options.keep;
    const createdBefore = cutoff !== undefined && jobIdTime(id).getTime() < cutoff;
    if (!beyondKeep && !createdBefore) {
      report.kept += 1;
      continue;
    }
    if (options.limit !== undefined && report.removed.length >= options.limit) break;
    const read = readState(paths, id);
    if (read.kind === 'missing') {
      if (Date.now() - jobIdTime(id).getTime() > YOUNG_ID_MS && !fs.existsSync(jobDir(paths, id))) {
        if (!options.dryRun) removeFromIndex(paths, id);
      }
      continue;
    }
    if (read.kind === 'corrupt') {
      report.unreadable.push(id);
      continue;
    }
    const state = read.state;
    // a job a done report ended is active while its worker has its grace
    if (!isTerminal(state.status) || awaitsWorkerExit(state)) {
      report.skipped_active += 1;
      continue;
    }
    const tooOld = cutoff !== undefined && Date.parse(state.finished_at ?? state.updated_at) < cutoff;
    if (!tooOld && !beyondKeep) {
      report.kept += 1;
      continue;
    }
    if (options.dryRun || removeJobFolder(paths, id)) report.removed.push(id);
  }
  return report;
}

/**
 * Takes a finished job out of `jobs/` in one rename, then deletes it and its index entry.
 * False when another gc (the runner's retention, a `gc` run) removed it first.
 */
function removeJobFolder(paths: SpoolPaths, id: string): boolean {
  if (!isJobId(id)) throw new Error(`refusing to remove ${String(id)}: not a job id`);
  const doomed = tempName(paths.tmp, `${id}.gc`);
  try {
    fs.renameSync(jobDir(paths, id), doomed);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
    removeFromIndex(paths, id);
    return false;
  }
  removeQuietly(doomed);
  removeFromIndex(paths, id);
  removeFromActive(paths, id);
  return true;
}
