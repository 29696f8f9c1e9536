import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ActiveList } from '../lib/spool/active-list.js';
import { newJobId } from '../lib/spool/ids.js';
import { ensureSpool, spoolPaths } from '../lib/spool/layout.js';
import { cleanupSpools, makeSpool, until } from './helpers/spool.js';

afterAll(cleanupSpools);

/** Job ids standing for the letters, in the same order (ids sort by creation time). */
const ids = Object.fromEntries(['a', 'b', 'c', 'x', 'y', 'z'].map((letter) => [letter, newJobId()])) as Record<'a' | 'b' | 'c' | 'x' | 'y' | 'z', string>;
const { a, b, c, x, y, z } = ids;

function setUp() {
  const paths = spoolPaths(makeSpool().home);
  ensureSpool(paths);
  const list = new ActiveList(paths);
  const touch = (id: string): void => fs.writeFileSync(path.join(paths.active, id), '');
  const remove = (id: string): void => fs.rmSync(path.join(paths.active, id));
  return { paths, list, touch, remove };
}

describe('the active list', () => {
  it('follows the folder through its watch events, in id order, without reading the folder again', async () => {
    const { paths, list, touch, remove } = setUp();
    touch(b);
    const watcher = fs.watch(paths.active, (_event, name) => list.noteEvent(name));
    list.setWatched(true);
    expect(list.list()).toEqual([b]);
    touch(c);
    touch(a);
    await until(() => list.list().length === 3, 5_000, 'the creations to arrive');
    expect(list.list()).toEqual([a, b, c]);
    remove(b);
    await until(() => list.list().length === 2, 5_000, 'the removal to arrive');
    expect(list.list()).toEqual([a, c]);
    // an event checks the disk: a late or repeated event for a marker changes nothing
    list.noteEvent(b);
    list.noteEvent(a);
    expect(list.list()).toEqual([a, c]);
    watcher.close();
  });

  it('reads the folder again after invalidate, after a name-less event, and on every look when unwatched', () => {
    const { list, touch } = setUp();
    list.setWatched(true);
    expect(list.list()).toEqual([]);
    touch(x); // no watch feeds it: unseen until a full read
    expect(list.list()).toEqual([]);
    list.invalidate();
    expect(list.list()).toEqual([x]);
    touch(y);
    list.noteEvent(null);
    expect(list.list()).toEqual([x, y]);
    list.setWatched(false);
    touch(z);
    expect(list.list()).toEqual([x, y, z]);
  });

  it('lists only job ids: a temp file or anything else a person puts in active/ is no job', () => {
    const { paths, list, touch } = setUp();
    touch(a);
    touch('.marker.123.1.abc.tmp');
    touch('notes.txt');
    fs.mkdirSync(path.join(paths.active, 'a-folder'));
    expect(list.list()).toEqual([a]);
    list.setWatched(true);
    expect(list.noteEvent('notes.txt')).toBe('nothing');
    expect(list.list()).toEqual([a]);
  });
});
