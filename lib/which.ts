import fs from 'node:fs';
import path from 'node:path';

/**
 * `which`: finding an executable the way execvp would. Used for worker binaries (runner),
 * client CLIs (clients), crontab (install) and agent probes.
 */

/** Why a command could not be found: not there at all, or there but not executable. */
export type Unresolved = { code: 'agent_not_found' | 'spawn_failed'; message: string };
export type Resolved = { ok: true; file: string } | { ok: false; error: Unresolved };

function executableState(file: string): 'ok' | 'missing' | 'not_executable' | 'directory' {
  let stat: fs.Stats | undefined;
  try {
    // no throw for the PATH entries that lack it: an error's stack costs more than the stat
    stat = fs.statSync(file, { throwIfNoEntry: false });
  } catch {
    return 'missing';
  }
  if (!stat) return 'missing';
  if (stat.isDirectory()) return 'directory';
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return 'ok';
  } catch {
    return 'not_executable';
  }
}

/**
 * Looks up `command` (a name with a slash is a path relative to `cwd`), so a missing binary
 * and a missing cwd get different, precise errors instead of one ENOENT.
 */
export function resolveExecutable(command: string, cwd: string, searchPath: string): Resolved {
  if (command === '') {
    return { ok: false, error: { code: 'spawn_failed', message: 'the command (argv[0]) is empty' } };
  }
  const candidates = command.includes('/')
    ? [path.resolve(cwd, command)]
    : searchPath.split(path.delimiter).filter((dir) => dir !== '').map((dir) => path.join(path.resolve(cwd, dir), command));
  let refused: string | undefined;
  for (const candidate of candidates) {
    const state = executableState(candidate);
    if (state === 'ok') return { ok: true, file: candidate };
    if (state === 'not_executable') refused ??= candidate;
  }
  if (refused) {
    return {
      ok: false,
      error: { code: 'spawn_failed', message: `permission denied: ${refused} is not executable (EACCES)` },
    };
  }
  const where = command.includes('/') ? `at ${candidates[0]}` : `in PATH (${searchPath || 'empty'})`;
  return { ok: false, error: { code: 'agent_not_found', message: `command ${JSON.stringify(command)} not found ${where}` } };
}

/** The file `binary` resolves to on `searchPath`, or null. */
export function which(binary: string, searchPath: string): string | null {
  const found = resolveExecutable(binary, '/', searchPath);
  return found.ok ? found.file : null;
}
