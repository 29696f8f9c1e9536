import fs from 'node:fs';
import path from 'node:path';
import { isJobId } from './ids.js';
import type { SpoolPaths } from './layout.js';
import { listActive } from './store.js';

/**
 * A process's view of `active/` (the pending and running jobs), kept current from the folder's
 * events instead of a readdir per look: with a long queue, reading the folder again on every
 * submit and every end was most of the runner's work. Each event is checked against the disk
 * (does the marker exist now?), so events that arrive late or twice do no harm. The folder is
 * read in full at first, after `invalidate` (the caller's slow poll, which also covers lost
 * events) and on every look while no watch is in place.
 */
export class ActiveList {
  private ids = new Set<string>();
  private sorted: string[] | null = null;
  private stale = true;
  private watched = false;

  constructor(private readonly paths: SpoolPaths) {}

  /** Says whether a watch on `active/` feeds `noteEvent`; without one every look reads the folder. */
  setWatched(watched: boolean): void {
    this.watched = watched;
    if (!watched) this.stale = true;
  }

  /** The next look reads the folder in full. */
  invalidate(): void {
    this.stale = true;
  }

  /**
   * One event from the watch on `active/`; a name-less event means "anything may have changed".
   * Says what it changed: a job `added`, one `removed`, `unknown` (the next look reads the folder)
   * or `nothing`.
   */
  noteEvent(name: string | null): 'added' | 'removed' | 'unknown' | 'nothing' {
    if (this.stale) return 'unknown';
    if (name === null) {
      this.stale = true;
      return 'unknown';
    }
    if (!isJobId(name)) return 'nothing'; // a temp file, or anything else that is no job marker
    const present = fs.existsSync(path.join(this.paths.active, name));
    if (present === this.ids.has(name)) return 'nothing';
    if (present) this.ids.add(name);
    else this.ids.delete(name);
    this.sorted = null;
    return present ? 'added' : 'removed';
  }

  /** The active job ids, oldest first (ids sort by creation time). Do not modify the array. */
  list(): readonly string[] {
    if (this.stale || !this.watched) {
      this.ids = new Set(listActive(this.paths));
      this.stale = false;
      this.sorted = null;
    }
    this.sorted ??= [...this.ids].sort();
    return this.sorted;
  }
}
