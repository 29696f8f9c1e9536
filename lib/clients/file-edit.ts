import fs from 'node:fs';
import path from 'node:path';
import { sha256, type FileEdit } from './records.js';

/**
 * Changing a config file safely: the original is copied to `<file>.agent-async.bak` before the
 * first change, the new text replaces the file atomically with its mode kept, and undoing the
 * change gives the original bytes back when nobody edited the file since.
 */

export const BACKUP_SUFFIX = '.agent-async.bak';

function createdDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let current = dir; !fs.existsSync(current); current = path.dirname(current)) missing.unshift(current);
  return missing;
}

function writeAtomically(file: string, text: string, mode: number): void {
  const temp = `${file}.agent-async.${process.pid}.tmp`;
  fs.writeFileSync(temp, text, { mode });
  fs.renameSync(temp, file);
}

/**
 * Writes `edit(current text)` to `file` and returns what undoing it needs. `previous` is the
 * earlier record for this file, so its first backup and creation facts are kept.
 */
export function applyFileEdit(file: string, edit: (text: string) => string, emptyText: string, previous: FileEdit | null): FileEdit {
  const exists = fs.existsSync(file);
  const original = exists ? fs.readFileSync(file, 'utf8') : emptyText;
  const next = edit(original);
  const dirs = createdDirs(path.dirname(file));
  if (dirs.length > 0) fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let backup = previous?.backup ?? null;
  if (exists && backup === null) {
    backup = `${file}${BACKUP_SUFFIX}`;
    fs.copyFileSync(file, backup);
  }
  if (next !== original || !exists) writeAtomically(file, next, exists ? fs.statSync(file).mode & 0o777 : 0o600);
  return {
    file,
    created_file: previous?.created_file ?? !exists,
    created_dirs: previous?.created_dirs ?? dirs,
    backup,
    written_sha256: sha256(next),
  };
}

/**
 * Undoes a recorded edit. Unchanged since we wrote it: the original bytes come back (or the
 * file and folders we created go). Edited since: only our part is taken out (`remove`).
 */
export function undoFileEdit(edit: FileEdit, remove: (text: string) => string, isEmpty: (text: string) => boolean): void {
  if (fs.existsSync(edit.file)) {
    const current = fs.readFileSync(edit.file, 'utf8');
    if (sha256(current) === edit.written_sha256 && edit.backup && fs.existsSync(edit.backup)) {
      fs.copyFileSync(edit.backup, edit.file);
    } else {
      const next = remove(current);
      if (edit.created_file && isEmpty(next)) fs.rmSync(edit.file);
      else if (next !== current) writeAtomically(edit.file, next, fs.statSync(edit.file).mode & 0o777);
    }
  }
  if (edit.backup) fs.rmSync(edit.backup, { force: true });
  for (const dir of [...edit.created_dirs].reverse()) {
    try {
      fs.rmdirSync(dir);
    } catch {
      break; // not empty: something else lives there now
    }
  }
}
