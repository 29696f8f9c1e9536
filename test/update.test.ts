import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupSpools, cli, jobState, makeSpool, pidAlive, startJob, until, waitJob } from './helpers/spool.js';

/** The daily auto-update schedule, doctor, and the runner's retention. */

afterAll(cleanupSpools);

describe('enable-auto-update / disable-auto-update (cron)', () => {
  it('adds one daily crontab line that runs update, keeps the other lines, and takes it out again', () => {
    const spool = makeSpool();
    const bin = path.join(spool.work, 'bin');
    fs.mkdirSync(bin);
    const tab = path.join(spool.work, 'crontab.txt');
    fs.writeFileSync(path.join(bin, 'crontab'), `#!/bin/sh
# a stand-in for crontab(1): -l lists, - installs stdin, -r removes
case "$1" in
  -l) [ -n "$CRONTAB_BROKEN" ] && { echo "crontab: cannot open spool file" >&2; exit 1; }
      [ -f '${tab}' ] && cat '${tab}' || { echo "no crontab for $(id -un)" >&2; exit 1; } ;;
  -) cat > '${tab}' ;;
  -r) rm -f '${tab}' ;;
esac
`, { mode: 0o755 });
    const userTab = '# m h dom mon dow command\n\n30 2 * * * /usr/local/bin/backup\n';
    fs.writeFileSync(tab, userTab);
    spool.env.PATH = `${bin}:${spool.env.PATH}`;
    const enabled = cli(spool, ['enable-auto-update']);
    expect(enabled.code, enabled.stderr).toBe(0);
    const lines = fs.readFileSync(tab, 'utf8').trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['# m h dom mon dow command', '', '30 2 * * * /usr/local/bin/backup']);
    expect(lines[3]).toMatch(/^0 9 \* \* \* '.*node' '.*bin\/agent-async\.js' update >> '.*update\.log' 2>&1 # agent-async auto-update$/);
    cli(spool, ['enable-auto-update']);
    expect(fs.readFileSync(tab, 'utf8').trim().split('\n')).toHaveLength(4);
    expect(cli(spool, ['doctor', '--json']).stdout).toMatch(/"detail": "daily"/);
    expect(cli(spool, ['disable-auto-update']).stdout).toMatch(/removed from cron/);
    expect(fs.readFileSync(tab, 'utf8')).toBe(userTab);
    // a crontab that cannot be read is never taken for an empty one and overwritten
    const broken = cli(spool, ['enable-auto-update'], { env: { ...spool.env, CRONTAB_BROKEN: '1' } });
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/crontab -l` failed \(crontab: cannot open spool file\); the crontab was left as it was/);
    expect(fs.readFileSync(tab, 'utf8')).toBe(userTab);
    const noCron = makeSpool();
    noCron.env.PATH = '/usr/bin:/bin';
    expect(cli(noCron, ['enable-auto-update']).stderr).toMatch(/crontab: not found; install cron/);
  });
});

describe('doctor and retention', () => {
  it('doctor exits non-zero and says what to fix when something is wrong', async () => {
    const spool = makeSpool();
    await waitJob(spool, await startJob(spool, ['true']));
    const good = cli(spool, ['doctor']);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/✓ spool permissions/);
    fs.chmodSync(spool.home, 0o755);
    const bad = cli(spool, ['doctor', '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).checks).toContainEqual(expect.objectContaining({ level: 'fail', what: 'spool permissions', fix: `chmod 700 ${spool.home}` }));
    fs.chmodSync(spool.home, 0o700);
  });

  it('the runner removes finished jobs beyond the configured count once its queue is empty', async () => {
    const spool = makeSpool({ retention_max_jobs: 2, concurrency: 1, runner_idle_seconds: 1 });
    const finished: string[] = [];
    for (const word of ['a', 'b', 'c']) finished.push(await startJob(spool, ['echo', word]));
    // the first runner may already apply retention when its queue runs empty: a job is ended or gone
    const endedOrGone = (id: string): boolean => {
      try {
        return ['done', 'error'].includes(jobState(spool, id).status);
      } catch {
        return true;
      }
    };
    await until(() => finished.every(endedOrGone), 20_000, 'the first jobs to end');
    const first = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8'));
    await until(() => !pidAlive(first.pid), 20_000, 'the idle runner to exit');
    // the next runner applies retention once its queue is empty and keeps the newest 2 jobs
    // (that gc never removes a pending or running job is tested with `gc --keep 0`)
    const running = await startJob(spool, ['sleep', '30'], ['--cwd', fs.mkdtempSync(path.join(spool.work, 'r'))]);
    const quick = await startJob(spool, ['true']);
    await until(() => jobState(spool, running).status === 'running', 20_000, 'the long job to run');
    cli(spool, ['cancel', running]);
    await waitJob(spool, quick);
    await until(() => fs.readdirSync(path.join(spool.home, 'jobs')).length === 2, 20_000, 'retention to run');
    expect(fs.readdirSync(path.join(spool.home, 'jobs')).sort()).toEqual([running, quick].sort());
    expect(fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).toMatch(/retention: removed \d+ finished jobs/);
  });
});
