import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { createMarker } from './fsx.js';
import { INDEX_LEVELS, isJobId } from './ids.js';
import { DIR_MODE, type SpoolPaths } from './layout.js';

/**
 * A time index of job ids so that listing the newest N jobs never reads the whole `jobs/`
 * folder (a readdir of 100,000 names alone takes ~60 ms). Each job has an empty marker at
 * `index/<first 5 id chars>/<first 7 id chars>/<id>`; ids start with their creation time, so
 * the levels are ~36-minute and ~1.7-second buckets and every folder stays small.
 * The index can be rebuilt from `jobs/` at any time (`agent-async gc --reindex`).
 */

const createdBuckets = new Set<string>();

export function indexMarkerPath(paths: SpoolPaths, id: string): string {
  const [outer, inner] = INDEX_LEVELS;
  return path.join(paths.index, id.slice(0, outer), id.slice(0, inner), id);
}

/**
 * Adds a job to the index. With `linkTo` (its `active/` marker) the index entry is a hard link
 * to that same empty file: one file made per job instead of two, and removing the active marker
 * later frees nothing (on ext4 without a journal every freed inode is one that each later file
 * creation must step over for a while).
 */
export function addToIndex(paths: SpoolPaths, id: string, linkTo?: string): void {
  const marker = indexMarkerPath(paths, id);
  const bucket = path.dirname(marker);
  if (!createdBuckets.has(bucket)) {
    fs.mkdirSync(bucket, { recursive: true, mode: DIR_MODE });
    createdBuckets.add(bucket);
  }
  try {
    placeMarker(marker, linkTo);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
    // the bucket was removed by a gc in another process since we cached it
    createdBuckets.delete(bucket);
    fs.mkdirSync(bucket, { recursive: true, mode: DIR_MODE });
    placeMarker(marker, linkTo);
  }
}

function placeMarker(marker: string, linkTo: string | undefined): void {
  if (linkTo !== undefined) {
    try {
      fs.linkSync(linkTo, marker);
      return;
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'EEXIST') return;
      if (code === 'ENOENT') throw error;
      // a filesystem without hard links: a file of its own does as well
    }
  }
  createMarker(marker);
}

export function removeFromIndex(paths: SpoolPaths, id: string): void {
  const marker = indexMarkerPath(paths, id);
  try {
    fs.unlinkSync(marker);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  // Drop emptied buckets; rmdir refuses a non-empty folder, so this never loses a marker.
  for (let dir = path.dirname(marker); dir !== paths.index; dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir);
      createdBuckets.delete(dir);
    } catch {
      break;
    }
  }
}

function readNames(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return [];
    throw error;
  }
}

/**
 * Yields indexed ids newest first (or oldest first), reading one small bucket at a time, so
 * a caller that stops after N ids reads only the buckets those N live in.
 */
export function* walkIndex(paths: SpoolPaths, order: 'newest' | 'oldest' = 'newest'): Generator<string> {
  const sortInOrder = (names: string[]): string[] =>
    order === 'newest' ? names.sort().reverse() : names.sort();
  for (const outer of sortInOrder(readNames(paths.index))) {
    const outerDir = path.join(paths.index, outer);
    for (const inner of sortInOrder(readNames(outerDir))) {
      for (const id of sortInOrder(readNames(path.join(outerDir, inner)))) {
        if (isJobId(id)) yield id;
      }
    }
  }
}

/** Rebuilds the index from `jobs/` (after a hand edit, or from a spool without one). */
export function rebuildIndex(paths: SpoolPaths): { added: number; removed: number } {
  const jobs = new Set(readNames(paths.jobs).filter(isJobId));
  let removed = 0;
  for (const id of [...walkIndex(paths, 'oldest')]) {
    if (jobs.has(id)) jobs.delete(id);
    else {
      removeFromIndex(paths, id);
      removed += 1;
    }
  }
  for (const id of jobs) addToIndex(paths, id);
  return { added: jobs.size, removed };
}
