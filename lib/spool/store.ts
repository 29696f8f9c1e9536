import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { errnoCode } from '../errors.js';
import {
  createMarker,
  discardTemp,
  entryExists,
  entryKindOf,
  fsyncDir,
  prepareTemp,
  readJsonFile,
  readRegularFile,
  removeQuietly,
  takeSlot,
  writeFileAtomic,
  writeJsonAtomic,
  type Durability,
  type PreparedTemp,
  type WriteOptions,
} from './fsx.js';
import { isJobId } from './ids.js';
import { addToIndex } from './index.js';
import { DIR_MODE, FILE_MODE, JOB_FILES, doneHintSlot, ensureSpool, jobDir, jobFile, type SpoolPaths } from './layout.js';
import {
  isTerminal,
  jobStateSchema,
  parseJobState,
  transition,
  type JobState,
  type Transition,
} from './state.js';

/**
 * Reading and writing one job folder. Every write is an atomic replace; the exclusive right
 * to change a job's state comes from its claim (`claim.<attempt>/`), never from a lock held
 * across processes, so a SIGKILL at any point leaves a state that the runner can finish.
 */

export type StateRead =
  | { kind: 'ok'; state: JobState }
  | { kind: 'missing' }
  | { kind: 'corrupt'; reason: string };

/**
 * Largest state.json read. What agent-async writes stays far below (a final message is capped
 * at 256 KiB); a bigger one was written by someone else and is reported as unreadable.
 */
export const STATE_MAX_BYTES = 8 * 1024 * 1024;

export function readState(paths: SpoolPaths, id: string): StateRead {
  const read = readJsonFile(jobFile(paths, id, JOB_FILES.state), STATE_MAX_BYTES);
  if (read.kind !== 'ok') return read;
  const parsed = parseJobState(read.value);
  return parsed.ok ? { kind: 'ok', state: parsed.state } : { kind: 'corrupt', reason: parsed.reason };
}

/** What a reader knows of one job: its state, or that it is gone or unreadable. */
export type JobSnapshot =
  | { id: string; kind: 'ok'; state: JobState }
  | { id: string; kind: 'missing' }
  | { id: string; kind: 'corrupt'; reason: string };

export function readSnapshot(paths: SpoolPaths, id: string): JobSnapshot {
  return { id, ...readState(paths, id) };
}

function assertValidState(state: JobState): void {
  const checked = jobStateSchema.safeParse(state);
  if (!checked.success) {
    throw new Error(`refusing to write an invalid state for job ${state.id}: ${checked.error.message}`);
  }
}

/** Job files are the spool's own: a folder someone made in the way of one is removed. */
const JOB_FILE_WRITE = { replaceFolder: true };

function stateText(state: JobState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

export function writeState(paths: SpoolPaths, state: JobState, durability: Durability, options: Pick<WriteOptions, 'beforeRename' | 'prepared'> = {}): void {
  assertValidState(state);
  writeFileAtomic(jobFile(paths, state.id, JOB_FILES.state), stateText(state), durability, { ...JOB_FILE_WRITE, ...options });
}

function durabilityOf(change: Transition): Durability {
  // The start and the end must survive a power loss (a lost `running` could let a job run
  // twice). A worker's pid need not, but its content is still synced before the rename, so
  // a power loss leaves the old state or the new one, never an empty file.
  return change.name === 'record_worker' ? 'file' : 'folder';
}

/**
 * Reads the state, applies one named transition and writes it back. Claim and terminal
 * transitions are made durable (folder fsync). Throws `IllegalTransition` when the job is no
 * longer in a status the transition starts from.
 */
export function applyTransition(paths: SpoolPaths, id: string, change: Transition): JobState {
  const read = readState(paths, id);
  if (read.kind !== 'ok') {
    throw new Error(`cannot change job ${id}: state.json is ${read.kind === 'missing' ? 'missing' : read.reason}`);
  }
  const next = transition(read.state, change);
  writeState(paths, next, durabilityOf(change));
  if (leavesActive(next, change)) leaveActive(paths, id);
  return next;
}

/**
 * A job leaves `active/` when it ends; one that a `done` report ended stays until its worker's
 * exit is recorded, so the runner keeps its slot (and its work tree) taken meanwhile.
 */
function leavesActive(next: JobState, change: Transition): boolean {
  return isTerminal(next.status) && change.name !== 'notify_done';
}

/** After a terminal write: a marker that cannot be removed now is the runner's to retry (and report). */
function leaveActive(paths: SpoolPaths, id: string): void {
  try {
    removeFromActive(paths, id);
  } catch {
    // the runner meets the marker again and says what is wrong with it
  }
}

/**
 * The writer of a running job's state: its supervisor, the only process that changes it while
 * the job runs. It makes every change from the state it wrote last, so a state.json that the
 * worker deleted, replaced or rewrote is written again from the truth, never taken for the
 * job's state; what was found is kept in `faults` for the job's end to report.
 */
export class JobStateWriter {
  private text: string;
  /** The inode of the state.json this writer renamed into place last (null before its first write). */
  private writtenIno: number | null = null;
  /** Temp files made ahead for the job files this writer writes next, by name (prepareAhead). */
  private readonly ahead = new Map<string, PreparedTemp>();
  readonly faults: string[] = [];

  constructor(private readonly paths: SpoolPaths, private current: JobState) {
    this.text = stateText(current);
  }

  /**
   * Starts a claimed job from the state read after its claim, without reading it again (the
   * claim keeps every other writer away).
   */
  static start(paths: SpoolPaths, claimed: JobState, change: Transition & { name: 'start' }): JobStateWriter {
    const writer = new JobStateWriter(paths, claimed);
    writer.write(transition(claimed, change), change);
    return writer;
  }

  get state(): JobState {
    return this.current;
  }

  apply(change: Transition): JobState {
    this.checkDisk();
    return this.applyChecked(change);
  }

  /** `apply` for a caller that called checkDisk just before (and judged the job's end with its faults). */
  applyChecked(change: Transition): JobState {
    return this.write(transition(this.current, change), change);
  }

  private write(next: JobState, change: Transition): JobState {
    // a state.json renamed in by the worker while ours was being flushed is noted before ours
    // replaces it (one lstat: it is no longer the file this writer put there)
    const prepared = this.takeAhead(JOB_FILES.state);
    writeState(this.paths, next, durabilityOf(change), {
      prepared,
      beforeRename: () => {
        if (this.writtenIno !== null && fs.lstatSync(this.file, { throwIfNoEntry: false })?.ino !== this.writtenIno) this.checkDisk();
      },
    });
    this.current = next;
    this.text = stateText(next);
    this.writtenIno = fs.lstatSync(this.file, { throwIfNoEntry: false })?.ino ?? null;
    if (leavesActive(next, change)) leaveActive(this.paths, next.id);
    return next;
  }

  private get file(): string {
    return jobFile(this.paths, this.current.id, JOB_FILES.state);
  }

  /**
   * Makes the temp files of the job's next writes of `names` (state.json, exit.json) now, for a
   * supervisor that is idle while others will await those writes (the end of a running job):
   * see prepareTemp. Failing here only leaves each write to make its own.
   */
  prepareAhead(names: readonly string[]): void {
    for (const name of names) {
      if (this.ahead.has(name)) continue;
      try {
        this.ahead.set(name, prepareTemp(jobFile(this.paths, this.current.id, name)));
      } catch {
        // the write makes its own
      }
    }
  }

  /** The temp file made ahead for the next write of `name`, handed over once. */
  takeAhead(name: string): PreparedTemp | null {
    const prepared = this.ahead.get(name) ?? null;
    this.ahead.delete(name);
    return prepared;
  }

  /** Removes the temp files made ahead that no write used. */
  release(): void {
    for (const prepared of this.ahead.values()) {
      try {
        discardTemp(prepared);
      } catch {
        // a temp left behind is swept with the writer's other leftovers
      }
    }
    this.ahead.clear();
  }

  /** Notes a state.json that is no longer what this writer wrote (once per kind of change). */
  checkDisk(): void {
    const read = readRegularFile(this.file, STATE_MAX_BYTES);
    let found: string | null = null;
    if (read.kind === 'missing') found = 'was deleted';
    else if (read.kind === 'refused') found = `was replaced (${read.reason})`;
    else if (read.data.toString('utf8') !== this.text) found = `was rewritten (${describeForeignState(read.data)})`;
    if (found === null) return;
    const fault = `state.json ${found} while the job ran`;
    if (!this.faults.includes(fault)) this.faults.push(fault);
  }
}

function describeForeignState(data: Buffer): string {
  try {
    const found = JSON.parse(data.toString('utf8')) as { status?: unknown; seq?: unknown };
    return `it said status ${JSON.stringify(found.status)}, seq ${JSON.stringify(found.seq)}`;
  } catch {
    return 'not valid JSON';
  }
}

/** Files of a job folder that, when present, must be regular files. */
const AUDITED_FILES: ReadonlySet<string> = new Set(Object.values(JOB_FILES));

function kindOfEntry(dir: string, entry: fs.Dirent): ReturnType<typeof entryKindOf> {
  const kind = entryKindOf(entry);
  if (kind !== 'special file') return kind;
  // a filesystem that gives no type in its listing: ask for it
  const stat = fs.lstatSync(path.join(dir, entry.name), { throwIfNoEntry: false });
  return stat ? entryKindOf(stat) : 'file';
}

/**
 * The job files that someone replaced by something other than a regular file (a named pipe, a
 * folder, a link, a device), described: one listing of the folder, no file opened.
 */
export function auditJobFolder(paths: SpoolPaths, id: string): string[] {
  const dir = jobDir(paths, id);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const faults: string[] = [];
  for (const entry of entries) {
    if (!AUDITED_FILES.has(entry.name) || entry.isFile()) continue;
    const kind = kindOfEntry(dir, entry);
    if (kind !== 'file') faults.push(`${entry.name} is a ${kind}, not a regular file`);
  }
  return faults;
}

/** Extra files written into a job folder before it is published (prompt.txt, …). */
export type JobFiles = Record<string, string>;

/**
 * Publishes a new job the Maildir way: the whole folder is built in `tmp/`, its index and
 * active markers are made, then one rename makes it appear in `jobs/`. A crash before the
 * rename leaves only debris that the sweep removes; readers never see half a job.
 */
export function publishJob(paths: SpoolPaths, state: JobState, files: JobFiles = {}): void {
  ensureSpool(paths);
  assertValidState(state);
  const building = path.join(paths.tmp, `${state.id}.job`);
  fs.mkdirSync(building, { mode: DIR_MODE });
  try {
    for (const [name, content] of Object.entries(files)) {
      fs.writeFileSync(path.join(building, name), content, { mode: FILE_MODE, flag: 'wx' });
    }
    const stateFd = fs.openSync(path.join(building, JOB_FILES.state), 'wx', FILE_MODE);
    try {
      fs.writeSync(stateFd, stateText(state));
      fs.fsyncSync(stateFd);
    } finally {
      fs.closeSync(stateFd);
    }
    if (isTerminal(state.status)) {
      addToIndex(paths, state.id);
    } else {
      const activeMarker = path.join(paths.active, state.id);
      createMarker(activeMarker);
      addToIndex(paths, state.id, activeMarker);
    }
    fs.renameSync(building, jobDir(paths, state.id));
  } catch (error) {
    removeQuietly(building);
    throw error;
  }
  fsyncDir(paths.jobs);
}

/**
 * Active markers: one empty file per pending or running job, the runner's work list. Names
 * that are no job id (a temp file, anything a person put there) are not listed.
 */
export function listActive(paths: SpoolPaths): string[] {
  try {
    return fs.readdirSync(paths.active).filter(isJobId).sort();
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
}

export function removeFromActive(paths: SpoolPaths, id: string): void {
  const marker = path.join(paths.active, id);
  try {
    fs.unlinkSync(marker);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') return;
    if (code !== 'EISDIR' && code !== 'EPERM') throw error;
    // a folder where the marker belongs: an empty one goes, anything in it is left to its maker
    try {
      fs.rmdirSync(marker);
    } catch (inner) {
      throw new Error(`active/${id} is a folder that is not empty, not a job marker; remove it by hand (${(inner as Error).message})`, { cause: inner });
    }
  }
}

// ── claims ────────────────────────────────────────────────────────────────────────────────

export const claimOwnerSchema = z.object({
  role: z.enum(['supervisor', 'cancel', 'runner']),
  pid: z.number().int().positive(),
  start_time: z.string().nullable(),
  host: z.string(),
  pid_ns: z.string().nullable().optional(),
  epoch: z.number().int().min(0).nullable(),
  at: z.string(),
});
export type ClaimOwner = z.infer<typeof claimOwnerSchema>;

export interface ClaimInfo {
  attempt: number;
  owner: ClaimOwner | null;
  ageMs: number;
}

const CLAIM_PATTERN = /^claim\.(\d+)$/;

export function claimDir(paths: SpoolPaths, id: string, attempt: number): string {
  return jobFile(paths, id, `claim.${attempt}`);
}

export function readClaims(paths: SpoolPaths, id: string): ClaimInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(jobDir(paths, id));
  } catch {
    return [];
  }
  const claims: ClaimInfo[] = [];
  for (const name of names) {
    const match = CLAIM_PATTERN.exec(name);
    if (!match) continue;
    const attempt = Number(match[1]);
    const dir = claimDir(paths, id, attempt);
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!stat) continue;
    // only a real folder is a claim anyone made; anything else counts as one without an owner
    const owner = stat.isDirectory() ? readJsonFile(path.join(dir, 'owner.json')) : undefined;
    const parsed = owner?.kind === 'ok' ? claimOwnerSchema.safeParse(owner.value) : undefined;
    claims.push({ attempt, owner: parsed?.success ? parsed.data : null, ageMs: Date.now() - stat.mtimeMs });
  }
  return claims.sort((a, b) => a.attempt - b.attempt);
}

/**
 * Takes the exclusive right to start (or cancel) attempt `attempt` of a job: `mkdir` succeeds
 * for exactly one process, even when two runners both believe they lead. The owner is
 * recorded inside so a later runner can tell a live claim from a dead one.
 */
export function claimJob(paths: SpoolPaths, id: string, attempt: number, owner: ClaimOwner): boolean {
  const dir = claimDir(paths, id, attempt);
  try {
    fs.mkdirSync(dir, { mode: DIR_MODE });
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST' || code === 'ENOENT') return false;
    throw error;
  }
  // Written in place, not through a temp file: a reader that sees it empty or half written
  // takes the claim as ownerless, which counts as held while it is young (reconcile.ts).
  // Made durable by the folder fsync of the transition that follows every claim.
  try {
    fs.writeFileSync(path.join(dir, 'owner.json'), `${JSON.stringify(owner, null, 2)}\n`, { mode: FILE_MODE, flag: 'wx' });
  } catch (error) {
    releaseClaim(paths, id, attempt);
    throw error;
  }
  return true;
}

/**
 * Gives up a claim that its maker took but never used (nothing was started under it, e.g. the
 * disk was full), so the job can be claimed again.
 */
export function releaseClaim(paths: SpoolPaths, id: string, attempt: number): void {
  removeQuietly(claimDir(paths, id, attempt));
}

// ── request files: cancel and done ────────────────────────────────────────────────────────

export function requestCancel(paths: SpoolPaths, id: string, by: string): void {
  const body = JSON.stringify({ at: new Date().toISOString(), by });
  writeFileAtomic(jobFile(paths, id, JOB_FILES.cancel), `${body}\n`, 'file', JOB_FILE_WRITE);
}

/** Anything named `cancel` in the job folder is a cancel request (it is never read). */
export function cancelRequested(paths: SpoolPaths, id: string): boolean {
  return entryExists(jobFile(paths, id, JOB_FILES.cancel));
}

/** Writes the `done` file a worker may also create itself; its content is the summary. */
export function writeDoneFile(paths: SpoolPaths, id: string, summary: string): void {
  // its content synced before it is seen: a runner that finalizes the job after a crash reads it
  writeFileAtomic(jobFile(paths, id, JOB_FILES.done), summary, 'folder', JOB_FILE_WRITE);
}

/**
 * Writes the done hint into the slot the job's supervisor made for it, if there is one (a
 * supervisor that runs the job makes it); false when there is none. The hint is the summary for
 * that live supervisor, which reads it from the page cache: never flushed, so never read after a
 * crash (a power loss could leave it empty).
 */
export function writeDoneHintInSlot(paths: SpoolPaths, id: string, summary: string): boolean {
  const target = jobFile(paths, id, JOB_FILES.doneHint);
  const slot = takeSlot(doneHintSlot(paths, id), target);
  if (!slot) return false;
  try {
    // a file someone renamed over the taken slot is never published: the write makes its own
    writeFileAtomic(target, summary, 'none', { ...JOB_FILE_WRITE, prepared: slot });
    return true;
  } catch {
    return false;
  }
}

/** Writes the done hint in a file of its own (no slot was there to take). */
export function writeDoneHint(paths: SpoolPaths, id: string, summary: string): void {
  writeFileAtomic(jobFile(paths, id, JOB_FILES.doneHint), summary, 'none', JOB_FILE_WRITE);
}

export function removeDoneHint(paths: SpoolPaths, id: string): void {
  removeQuietly(jobFile(paths, id, JOB_FILES.doneHint));
}

// ── exit record ───────────────────────────────────────────────────────────────────────────

export const EXIT_REASONS = ['exited', 'cancelled', 'timed_out', 'stalled', 'done_grace', 'spawn_failed'] as const;

export const exitRecordSchema = z.object({
  schema_version: z.literal(1),
  attempt: z.number().int().min(1),
  pid: z.number().int().positive().nullable(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  reason: z.enum(EXIT_REASONS).describe('why the worker ended: on its own, or stopped by the supervisor'),
  started_at: z.string().nullable(),
  ended_at: z.string(),
  spawn_error: z.object({ code: z.string(), message: z.string() }).nullable(),
  survivors: z.array(z.number().int()).describe('pids still alive after the final kill, if any'),
});
export type ExitRecord = z.infer<typeof exitRecordSchema>;

export function writeExitRecord(paths: SpoolPaths, id: string, record: ExitRecord, prepared: PreparedTemp | null = null): void {
  // Not fsynced: the terminal state written right after is (file and folder), and holds the
  // same facts; exit.json only matters when a process crash (not a power loss) comes between.
  writeJsonAtomic(jobFile(paths, id, JOB_FILES.exit), exitRecordSchema.parse(record), 'none', { ...JOB_FILE_WRITE, prepared });
}

export function readExitRecord(paths: SpoolPaths, id: string): ExitRecord | undefined {
  const read = readJsonFile(jobFile(paths, id, JOB_FILES.exit));
  if (read.kind !== 'ok') return undefined;
  const parsed = exitRecordSchema.safeParse(read.value);
  return parsed.success ? parsed.data : undefined;
}
