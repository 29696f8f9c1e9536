import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { discardSlot, discardTemp, prepareSlot, prepareTemp, takeSlot, writeFileAtomic } from '../lib/spool/fsx.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-prepared-'));
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

const folder = (): string => fs.mkdtempSync(path.join(base, 'f'));
const temps = (dir: string): string[] => fs.readdirSync(dir).filter((name) => name.endsWith('.tmp'));

describe('a temp file made ahead of its write', () => {
  it('is the file the write renames into place, with only the new content', () => {
    const dir = folder();
    const target = path.join(dir, 'state.json');
    writeFileAtomic(target, 'old state, longer than the new one');
    const prepared = prepareTemp(target);
    expect(temps(dir)).toEqual([path.basename(prepared.path)]);
    writeFileAtomic(target, 'new', 'folder', { prepared });
    expect(fs.readFileSync(target, 'utf8')).toBe('new');
    expect(fs.statSync(target).ino).toBe(prepared.ino);
    expect(temps(dir)).toEqual([]);
  });

  it('starts empty even when someone wrote into it through its path meanwhile', () => {
    const dir = folder();
    const target = path.join(dir, 'state.json');
    const prepared = prepareTemp(target);
    fs.writeFileSync(prepared.path, 'x'.repeat(100));
    writeFileAtomic(target, 'ours', 'file', { prepared });
    expect(fs.readFileSync(target, 'utf8')).toBe('ours');
  });

  it('swapped for another file, or removed, it is not used: the write makes a new one and never renames the stranger into place', () => {
    const dir = folder();
    const target = path.join(dir, 'state.json');
    const swapped = prepareTemp(target);
    fs.rmSync(swapped.path);
    fs.writeFileSync(swapped.path, 'forged');
    writeFileAtomic(target, 'ours', 'folder', { prepared: swapped });
    expect(fs.readFileSync(target, 'utf8')).toBe('ours');
    expect(fs.readFileSync(swapped.path, 'utf8')).toBe('forged');
    const linked = prepareTemp(target);
    fs.rmSync(linked.path);
    fs.symlinkSync(path.join(dir, 'elsewhere'), linked.path);
    writeFileAtomic(target, 'ours again', 'folder', { prepared: linked });
    expect(fs.readFileSync(target, 'utf8')).toBe('ours again');
    expect(fs.lstatSync(linked.path).isSymbolicLink()).toBe(true);
    const removed = prepareTemp(target);
    fs.rmSync(removed.path);
    writeFileAtomic(target, 'and again', 'folder', { prepared: removed });
    expect(fs.readFileSync(target, 'utf8')).toBe('and again');
  });

  it('discarded unused, it is removed, but not a file that took its place', () => {
    const dir = folder();
    const target = path.join(dir, 'state.json');
    discardTemp(prepareTemp(target));
    expect(temps(dir)).toEqual([]);
    const swapped = prepareTemp(target);
    fs.rmSync(swapped.path);
    fs.writeFileSync(swapped.path, 'someone else');
    discardTemp(swapped);
    expect(fs.readFileSync(swapped.path, 'utf8')).toBe('someone else');
  });
});

describe('a file made ahead by one process for another\'s write (a slot)', () => {
  it('is taken once, and becomes the written file', () => {
    const dir = folder();
    const slot = path.join(dir, '.slot');
    const target = path.join(dir, '.done-hint');
    prepareSlot(slot);
    prepareSlot(slot); // already there: left as it is
    const ino = fs.statSync(slot).ino;
    const taken = takeSlot(slot, target);
    expect(taken?.ino).toBe(ino);
    expect(takeSlot(slot, target)).toBeNull();
    writeFileAtomic(target, 'summary', 'none', { prepared: taken });
    expect(fs.readFileSync(target, 'utf8')).toBe('summary');
    expect(fs.statSync(target).ino).toBe(ino);
    expect(fs.readdirSync(dir)).toEqual(['.done-hint']);
  });

  it('is never used when someone wrote into it: a write would leave their bytes after its own', () => {
    const dir = folder();
    const slot = path.join(dir, '.slot');
    const target = path.join(dir, '.done-hint');
    prepareSlot(slot);
    fs.appendFileSync(slot, 'forged summary that is longer');
    expect(takeSlot(slot, target)).toBeNull();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('is never used when someone put a link, a hard link, a pipe or a folder there; what they point at is untouched', () => {
    const dir = folder();
    const slot = path.join(dir, '.slot');
    const target = path.join(dir, '.done-hint');
    const outside = path.join(base, `outside-${path.basename(dir)}`);
    fs.writeFileSync(outside, 'precious');
    fs.symlinkSync(outside, slot);
    expect(takeSlot(slot, target)).toBeNull();
    fs.linkSync(outside, slot);
    expect(takeSlot(slot, target)).toBeNull();
    expect(spawnSync('mkfifo', [slot]).status).toBe(0);
    expect(takeSlot(slot, target)).toBeNull();
    fs.mkdirSync(slot);
    fs.writeFileSync(path.join(slot, 'inside'), 'kept');
    expect(takeSlot(slot, target)).toBeNull();
    expect(fs.readFileSync(outside, 'utf8')).toBe('precious');
    expect(fs.statSync(outside).nlink).toBe(1);
    // the folder was moved aside, never emptied
    const aside = fs.readdirSync(dir).filter((name) => name.endsWith('.tmp'));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, aside[0]!, 'inside'), 'utf8')).toBe('kept');
  });

  it('discarded when nobody took it: a file goes, a folder in its place stays', () => {
    const dir = folder();
    const slot = path.join(dir, '.slot');
    prepareSlot(slot);
    discardSlot(slot);
    expect(fs.existsSync(slot)).toBe(false);
    discardSlot(slot);
    fs.mkdirSync(slot);
    discardSlot(slot);
    expect(fs.statSync(slot).isDirectory()).toBe(true);
  });
});
