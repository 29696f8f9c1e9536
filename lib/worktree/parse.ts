/**
 * Pure readers of git's machine output (always the NUL-separated `-z` forms, so that any
 * file name survives). No I/O here.
 */

export interface GitVersion {
  major: number;
  minor: number;
  patch: number;
  text: string;
}

/** "git version 2.39.5", "git version 2.37.1 (Apple Git-137.1)", "git version 2.45.1.windows.1". */
export function parseGitVersion(text: string): GitVersion | null {
  const match = /git version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return null;
  const [, major, minor, patch] = match;
  return { major: Number(major), minor: Number(minor), patch: Number(patch ?? 0), text: text.replace(/^git version /, '').trim() };
}

function fields(output: Buffer | string): string[] {
  const text = typeof output === 'string' ? output : output.toString('utf8');
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

export interface WorktreeEntry {
  path: string;
  head: string | null;
  /** `refs/heads/...`, or null when detached. */
  branch: string | null;
  bare: boolean;
  /** The lock reason ('' when locked without one), or null when not locked. */
  locked: string | null;
  prunable: boolean;
}

/** `git worktree list --porcelain -z`: records of `key value` fields, ended by an empty field. */
export function parseWorktreeList(output: Buffer | string): WorktreeEntry[] {
  const entries: WorktreeEntry[] = [];
  let current: WorktreeEntry | null = null;
  for (const field of fields(output)) {
    if (field === '') {
      if (current) entries.push(current);
      current = null;
      continue;
    }
    const space = field.indexOf(' ');
    const key = space < 0 ? field : field.slice(0, space);
    const value = space < 0 ? '' : field.slice(space + 1);
    if (key === 'worktree') {
      if (current) entries.push(current);
      current = { path: value, head: null, branch: null, bare: false, locked: null, prunable: false };
    } else if (current) {
      if (key === 'HEAD') current.head = value;
      else if (key === 'branch') current.branch = value;
      else if (key === 'bare') current.bare = true;
      else if (key === 'locked') current.locked = value;
      else if (key === 'prunable') current.prunable = true;
    }
  }
  if (current) entries.push(current);
  return entries;
}

export interface MergeTreeResult {
  tree: string;
  /** Paths with a conflict, each once. */
  conflicts: string[];
  /** git's informational lines ("CONFLICT (content): Merge conflict in f1"). */
  messages: string[];
}

/**
 * `git merge-tree --write-tree -z --name-only --messages`: the tree, the conflicted paths, an
 * empty field, then groups of (path count, paths, message type, message).
 */
export function parseMergeTree(output: Buffer | string): MergeTreeResult {
  const parts = fields(output);
  const tree = parts[0] ?? '';
  let index = 1;
  const conflicts = new Set<string>();
  while (index < parts.length && parts[index] !== '') conflicts.add(parts[index++]!);
  index += 1;
  const messages: string[] = [];
  while (index < parts.length) {
    const count = Number(parts[index]);
    if (!Number.isInteger(count) || count < 0) break;
    index += 1 + count + 1; // the count, its paths, the message type
    const message = parts[index++];
    if (message !== undefined) messages.push(message.trim());
  }
  return { tree, conflicts: [...conflicts], messages };
}

export type FileStatus = 'added' | 'modified' | 'deleted' | 'renamed' | 'copied' | 'type_changed';

/** One changed file of a job's branch, as `state.json` `changes.files` records it. */
export interface ChangedFile {
  path: string;
  status: FileStatus;
  /** The path before a rename or copy. */
  old_path?: string;
  /** Lines added and removed; null for a binary file. */
  insertions: number | null;
  deletions: number | null;
}

const STATUS_LETTERS: Record<string, FileStatus> = {
  A: 'added', M: 'modified', D: 'deleted', R: 'renamed', C: 'copied', T: 'type_changed',
};

interface NameStatus {
  path: string;
  status: FileStatus;
  old_path?: string;
}

/** `git diff-tree -r -z --name-status`: `X\0path\0`, or `R100\0old\0new\0` for renames and copies. */
export function parseNameStatus(output: Buffer | string): NameStatus[] {
  const parts = fields(output);
  const entries: NameStatus[] = [];
  for (let index = 0; index < parts.length;) {
    const letter = (parts[index++] ?? '').charAt(0);
    const status = STATUS_LETTERS[letter] ?? 'modified';
    if (letter === 'R' || letter === 'C') {
      const oldPath = parts[index++]!;
      entries.push({ path: parts[index++]!, status, old_path: oldPath });
    } else {
      entries.push({ path: parts[index++]!, status });
    }
  }
  return entries;
}

interface LineCounts {
  insertions: number | null;
  deletions: number | null;
}

/** `git diff-tree -r -z --numstat`: `ins\tdel\tpath\0`, or `ins\tdel\t\0old\0new\0`; `-` for binary. */
export function parseNumstat(output: Buffer | string): Map<string, LineCounts> {
  const parts = fields(output);
  const counts = new Map<string, LineCounts>();
  for (let index = 0; index < parts.length;) {
    const [added, removed, name] = parts[index++]!.split('\t');
    const path = name === '' ? (index++, parts[index++]!) : name!;
    counts.set(path, { insertions: added === '-' ? null : Number(added), deletions: removed === '-' ? null : Number(removed) });
  }
  return counts;
}

export function mergeFileStats(statuses: NameStatus[], counts: Map<string, LineCounts>): ChangedFile[] {
  return statuses.map((entry) => ({ ...entry, ...(counts.get(entry.path) ?? { insertions: null, deletions: null }) }));
}

const GITLINK_MODE = '160000';

/** Paths of gitlinks (submodules, embedded repositories) in `git ls-files -s -z` or `git ls-tree -r -z`. */
export function parseGitlinks(output: Buffer | string): string[] {
  return fields(output)
    .filter((field) => field.startsWith(`${GITLINK_MODE} `))
    .map((field) => field.slice(field.indexOf('\t') + 1));
}

/** `git for-each-ref --format=%(refname)%00%(objectname)`: name → object (ref names hold no newline). */
export function parseRefs(output: Buffer | string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of output.toString().split('\n')) {
    const [name, object] = line.split('\0');
    if (name && object) refs.set(name, object);
  }
  return refs;
}
