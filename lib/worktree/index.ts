/**
 * Worktree isolation, the git layer: a snapshot of the user's work tree, a worktree per job
 * in the spool, the job's changes as a branch and a patch, a three-way apply back that never
 * loses the user's uncommitted work, discard and gc. docs/WORKTREES.md describes the recipes.
 */
export { IDENTITY, MIN_GIT_VERSION, GitError, requireGit, type WorktreeContext } from './git.js';
export { probeRepository, type RepoProbe } from './probe.js';
export { snapshot, type Snapshot, type SnapshotOptions, type SubmodulePolicy } from './snapshot.js';
export {
  createWorktree, recreateWorktree, normalizeCopyEntries, SetupCancelledError, SetupFailedError,
  type CopyEntry, type CopyMode, type WorktreeOptions, type WorktreeTarget,
} from './create.js';
export { finishWorktree, writePatch, type Changes, type FinishResult, type FinishTarget } from './finish.js';
export { applyChanges, type AppliedRecord, type ApplyResult, type ApplyTarget } from './apply.js';
export { readPatchPage, DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES, type PatchPage } from './patch.js';
export {
  discardJob, removeJobs, pruneWorktrees, listJobStates, hasUnappliedWork, listWorktreeFolders, sweepWorktreeFolders,
  type DiscardReport, type RemoveReport, type JobGitState,
} from './gc.js';
export { branchName, jobRefs, readRecord, worktreePath, worktreesDir, type WorktreeRecord } from './layout.js';
export type { ChangedFile, FileStatus } from './parse.js';
export {
  cachePath, cacheRepository, checkRemoteName, checkRemoteUrl, deleteRemoteRefs, fetchBase, fetchBranch, fetchResult, findRemoteUrl, pushBase, pushResult, remoteRefs, remoteUrl,
} from './remote.js';
export { cacheRemoteOf, knownRepositories, noteRepository, worktreeContext } from './spool.js';
