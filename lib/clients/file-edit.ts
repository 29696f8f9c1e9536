import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../spool/fsx.js';
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

/** Replaces the file (the target of a symlink, so a dotfiles link stays a link), keeping its mode. */
export function writeKeepingMode(file: string, text: string): void {
  const exists = fs.existsSync(file);
  const target = exists ? fs.realpathSync(file) : file;
  const mode = exists ? fs.statSync(target).mode & 0o777 : 0o600;
  writeFileAtomic(target, text);
  fs.chmodSync(target, mode);
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
  if (backup !== null && sha256(original) !== previous?.written_sha256) {
    // edited by hand since our last write: restoring the old backup would undo those edits
    fs.rmSync(backup, { force: true });
    backup = null;
  } else if (exists && backup === null && previous === null) {
    backup = `${file}${BACKUP_SUFFIX}`;
    fs.copyFileSync(file, backup);
  }
  if (next !== original || !exists) writeKeepingMode(file, next);
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
    const untouched = sha256(current) === edit.written_sha256;
    if (untouched && edit.created_file) {
      fs.rmSync(edit.file);
    } else if (untouched && edit.backup && fs.existsSync(edit.backup)) {
      writeKeepingMode(edit.file, fs.readFileSync(edit.backup, 'utf8'));
    } else {
      const next = remove(current);
      if (edit.created_file && isEmpty(next)) fs.rmSync(edit.file);
      else if (next !== current) writeKeepingMode(edit.file, next);
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
