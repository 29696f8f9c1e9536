import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolPaths } from '../lib/spool/layout.js';
import { sweepTmp } from '../lib/spool/sweep.js';
import { cleanupSpools, makeSpool, startJob, waitJob } from './helpers/spool.js';

afterAll(cleanupSpools);

describe('temp sweep', () => {
  it('removes temp files and half-built job folders older than the limit, keeps young ones', () => {
    const spool = makeSpool();
    const paths = spoolPaths(spool.home);
    fs.mkdirSync(paths.tmp, { recursive: true });
    const oldFile = path.join(paths.tmp, 'state.json.123.1.abc.tmp');
    const oldJob = path.join(paths.tmp, '0hofx0000000000000000000.job');
    const young = path.join(paths.tmp, 'state.json.124.1.def.tmp');
    fs.writeFileSync(oldFile, '{');
    fs.mkdirSync(oldJob);
    fs.writeFileSync(path.join(oldJob, 'state.json'), '{}');
    fs.writeFileSync(young, '{');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(oldFile, twoHoursAgo, twoHoursAgo);
    fs.utimesSync(oldJob, twoHoursAgo, twoHoursAgo);
    expect(sweepTmp(paths, 3600_000)).toBe(2);
    expect(fs.readdirSync(paths.tmp)).toEqual([path.basename(young)]);
  });

  it('removes old temp files next to the files they were for: in the spool folder and in the given job folders', () => {
    const spool = makeSpool();
    const paths = spoolPaths(spool.home);
    const id = '0hofx0000000000000000000';
    fs.mkdirSync(path.join(paths.jobs, id), { recursive: true });
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    const make = (file: string, old: boolean): string => {
      fs.writeFileSync(file, '{');
      if (old) fs.utimesSync(file, twoHoursAgo, twoHoursAgo);
      return file;
    };
    const oldInHome = make(path.join(paths.home, '.runner.json.123.1.abc.tmp'), true);
    const oldInJob = make(path.join(paths.jobs, id, '.state.json.123.2.abc.tmp'), true);
    const youngInJob = make(path.join(paths.jobs, id, '.state.json.123.3.abc.tmp'), false);
    const notATemp = make(path.join(paths.jobs, id, 'done'), true);
    expect(sweepTmp(paths, 3600_000, [id])).toBe(2);
    for (const gone of [oldInHome, oldInJob]) expect(fs.existsSync(gone)).toBe(false);
    for (const kept of [youngInJob, notATemp]) expect(fs.existsSync(kept)).toBe(true);
  });

  it('is done by the runner when it starts', async () => {
    const spool = makeSpool();
    const tmp = path.join(spool.home, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const leaked = path.join(tmp, 'state.json.99.1.zzz.tmp');
    fs.writeFileSync(leaked, '{"half');
    const old = new Date(Date.now() - 3 * 3600_000);
    fs.utimesSync(leaked, old, old);
    await waitJob(spool, await startJob(spool, ['true']));
    expect(fs.existsSync(leaked)).toBe(false);
    expect(fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).toMatch(/swept 1 stale temp files/);
  });
});
