import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allStates,
  assertSchemaValid,
  cleanupSpools,
  cli,
  gateJob,
  jobState,
  makeSpool,
  startJob,
  startJobByCli,
  treeSnapshot,
  until,
  waitJob,
} from './helpers/spool.js';

afterAll(cleanupSpools);

describe('CLI: bad input gets a clear error naming the field and changes nothing', async () => {
  const spool = makeSpool();
  const existing = await startJob(spool, ['true']);
  beforeAll(async () => {
    await waitJob(spool, existing);
  });
  const aFile = path.join(spool.work, 'a-file');
  fs.writeFileSync(aFile, 'x');

  const cases: Array<[string, string[], RegExp, number]> = [
    ['unknown agent', ['start', 'nope', '--', 'true'], /agent "nope" is not known; allowed: exec/, 2],
    ['missing cwd', ['start', 'exec', '--cwd', '/no/such/dir', '--', 'true'], /cwd: "\/no\/such\/dir" does not exist/, 2],
    ['cwd that is a file', ['start', 'exec', '--cwd', aFile, '--', 'true'], /cwd: ".*a-file" is a file, not a directory/, 2],
    ['no command', ['start', 'exec'], /argv: is required/, 2],
    ['empty command', ['start', 'exec', '--', ''], /argv\[0\]: the command must not be empty/, 2],
    ['negative job timeout', ['start', 'exec', '--timeout', '-5', '--', 'true'], /timeout: .*not a duration/, 2],
    ['zero job timeout', ['start', 'exec', '--timeout', '0', '--', 'true'], /timeout: must be above 0; got 0/, 2],
    ['path traversal id', ['show', '../x'], /id: "\.\.\/x" is not a job id/, 2],
    ['slash id', ['cancel', '/'], /id: "\/" is not a job id/, 2],
    ['too long id', ['wait', 'a'.repeat(300)], /ids\[0\]: ".*300 chars\)" is not a job id/, 2],
    ['unknown id', ['show', '0hofwkskze9k7j2qzbazu7a'], /id "0hofwkskze9k7j2qzbazu7a": no such job/, 3],
    ['unknown status', ['ls', '--status', 'weird'], /status: "weird" is not a status; allowed: pending, running, done, error, cancelled/, 2],
    ['limit out of range', ['ls', '--limit', '0'], /limit: must be a whole number from 1 to 1000/, 2],
    ['bad gc age', ['gc', '--older-than', 'soon'], /older-than: "soon" is not a duration/, 2],
    ['unknown command', ['frobnicate'], /Unknown argument: frobnicate/, 2],
    ['unknown option', ['ls', '--colour'], /ls: unknown flag --colour/, 2],
    ['misspelt flag before an id', ['wait', '--anyy', existing], /wait: unknown flag --anyy \(did you mean --any\?\)/, 2],
    ['exec command without --', ['start', 'exec', 'ls', '-la'], /put the command after --.*: agent-async start exec -- ls -la/, 2],
    ['stray word before --', ['start', 'exec', '--timeout', '5', 'min', '--', 'true'], /"min" before --.*did you mean --timeout 5m\?/, 2],
  ];

  for (const [name, args, message, code] of cases) {
    it(name, () => {
      const before = treeSnapshot(spool.home);
      const result = cli(spool, args);
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(code);
      expect(treeSnapshot(spool.home)).toEqual(before);
    });
  }

  it('a relative --cwd is taken relative to the current folder', async () => {
    fs.mkdirSync(path.join(spool.work, 'sub'));
    const result = cli(spool, ['start', 'exec', '--cwd', 'sub', '--json', '--', 'pwd']);
    expect(result.code).toBe(0);
    const id = JSON.parse(result.stdout).job_id;
    expect((await waitJob(spool, id)).request.cwd).toBe(path.join(spool.work, 'sub'));
  });
});

describe('CLI: the job life cycle', () => {
  it('start prints the id at once; wait, show, logs and ls report the job', () => {
    const spool = makeSpool();
    const id = startJobByCli(spool, ['sh', '-c', 'echo out; echo err >&2; exit 0']);
    expect(id).toMatch(/^[0-9a-z]{23}$/);
    const wait = cli(spool, ['wait', id]);
    expect(wait.code).toBe(0);
    expect(wait.stdout).toContain(`${id}  done (exit 0)`);

    const show = JSON.parse(cli(spool, ['show', id, '--json']).stdout);
    expect(show).toMatchObject({ id, status: 'done', exit_code: 0, attempt: 1 });
    assertSchemaValid(show);
    expect(cli(spool, ['show', id]).stdout).toMatch(/status\s+done/);

    const logs = cli(spool, ['logs', id]);
    expect(logs.stdout.split('\n').sort()).toEqual(['', 'err', 'out']);
    expect(cli(spool, ['logs', id, '--tail', '1']).stdout).toMatch(/^(err|out)\n$/);

    const ls = JSON.parse(cli(spool, ['ls', '--json']).stdout);
    expect(ls.map((s: any) => s.id)).toEqual([id]);
    expect(cli(spool, ['ls']).stdout).toMatch(new RegExp(`${id}\\s+done\\s+exec`));
  });

  it('start --wait prints what an exec job wrote, then its status; only the tail of a long output', () => {
    const spool = makeSpool();
    const started = cli(spool, ['start', 'exec', '--wait', '--', 'echo', 'hello from agent-async']);
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(/^hello from agent-async\n[0-9a-z]{23}\s+done \(exit 0\)\n$/);

    const long = cli(spool, ['start', 'exec', '--wait', '--', 'sh', '-c', 'seq 1 30000; echo last line']);
    expect(long.code).toBe(0);
    const shown = long.stdout.split('\n');
    expect(shown).not.toContain('1');
    expect(Number(shown[0])).toBeGreaterThan(1);
    expect(Number(shown[1])).toBe(Number(shown[0]) + 1); // starts at a whole line
    expect(shown.at(-3)).toBe('last line');
    expect(long.stdout.length).toBeLessThanOrEqual(64 * 1024 + 100);
    const hidden = Number(/… (\d+) earlier bytes not shown/.exec(long.stderr)?.[1]);
    expect(hidden + long.stdout.length - shown.at(-2)!.length - 1).toBe(fs.statSync(path.join(spool.home, 'jobs', shown.at(-2)!.split(/\s/)[0]!, 'output.log')).size);
  });

  it('exit codes follow the job: 1 error, 4 cancelled, 124 timed out waiting', async () => {
    const spool = makeSpool();
    const failing = cli(spool, ['start', 'exec', '--wait', '--', 'sh', '-c', 'exit 7']);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toMatch(/error exit_nonzero: the worker exited with code 7/);

    const slow = await startJob(spool, ['sleep', '30']);
    await until(() => jobState(spool, slow).status === 'running', 20_000, 'the job to start');
    const waited = cli(spool, ['wait', slow, '--timeout', '1s']);
    expect(waited.code).toBe(124);
    expect(waited.stdout).toMatch(/running for/);
    const cancelled = cli(spool, ['cancel', slow]);
    expect(cancelled.code).toBe(0);
    expect(cli(spool, ['wait', slow]).code).toBe(4);
  });

  it('ls filters by status and limit; newest first', async () => {
    const spool = makeSpool();
    const ids = [await startJob(spool, ['true']), await startJob(spool, ['false']), await startJob(spool, ['true'])];
    for (const id of ids) await waitJob(spool, id);
    const newest = JSON.parse(cli(spool, ['ls', '--json', '--limit', '2']).stdout).map((s: any) => s.id);
    expect(newest).toEqual([ids[2], ids[1]]);
    const errors = JSON.parse(cli(spool, ['ls', '--json', '--status', 'error']).stdout).map((s: any) => s.id);
    expect(errors).toEqual([ids[1]]);
  });

  it('retry queues a new job with the same request', async () => {
    const spool = makeSpool();
    const ledger = path.join(spool.work, 'ledger');
    const first = await startJob(spool, ['sh', '-c', `echo run >> ${ledger}`]);
    await waitJob(spool, first);
    const retried = cli(spool, ['retry', first, '--json']);
    const second = JSON.parse(retried.stdout).job_id;
    expect(second).not.toBe(first);
    const state = await waitJob(spool, second);
    expect(state.status).toBe('done');
    expect(state.request.retry_of).toBe(first);
    expect(state.request.argv).toEqual(jobState(spool, first).request.argv);
    expect(fs.readFileSync(ledger, 'utf8')).toBe('run\nrun\n');
  });

  it('notify-done ends a running job as done with its summary', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['sleep', '300']);
    expect(cli(spool, ['wait', id, '--timeout', '1s']).code).toBe(124);
    // a pending job cannot be done yet (it is refused): wait until it runs
    await until(() => jobState(spool, id).status === 'running', 20_000, 'the job to run');
    const notify = cli(spool, ['notify-done', id, 'all', 'tests', 'pass']);
    expect(notify.code).toBe(0);
    const state = await waitJob(spool, id);
    expect(state).toMatchObject({ status: 'done', notified: { summary: 'all tests pass' } });
    expect(cli(spool, ['notify-done', id, 'again']).stdout).toMatch(/already ended/);
  });

  it('gc removes finished jobs by age or count, never pending or running ones', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const finished = [await startJob(spool, ['true']), await startJob(spool, ['true']), await startJob(spool, ['true'])];
    for (const id of finished) await waitJob(spool, id);
    const running = await startJob(spool, ['sleep', '300']);
    const pending = await startJob(spool, ['true']);
    await until(() => jobState(spool, running).status === 'running', 20_000, 'the job to start');

    // keep the newest 3 jobs: pending, running, and the newest finished one
    const dry = JSON.parse(cli(spool, ['gc', '--keep', '3', '--dry-run', '--json']).stdout);
    expect(dry.removed).toEqual([finished[1], finished[0]]);
    expect(fs.existsSync(path.join(spool.home, 'jobs', finished[0]!))).toBe(true);

    const report = JSON.parse(cli(spool, ['gc', '--keep', '3', '--json']).stdout);
    expect(report).toMatchObject({ removed: [finished[1], finished[0]], kept: 3 });
    // a pending or running job is never removed, whatever its rank
    expect(JSON.parse(cli(spool, ['gc', '--keep', '0', '--dry-run', '--json']).stdout)).toMatchObject({ removed: [finished[2]], skipped_active: 2 });
    const left = JSON.parse(cli(spool, ['ls', '--json']).stdout).map((s: any) => s.id);
    expect(left.sort()).toEqual([finished[2], running, pending].sort());

    const byAge = JSON.parse(cli(spool, ['gc', '--older-than', '0s', '--json']).stdout);
    expect(byAge.removed).toEqual([finished[2]]);
    expect(jobState(spool, running).status).toBe('running');
    expect(jobState(spool, pending).status).toBe('pending');
    cli(spool, ['cancel', running]);
    expect((await waitJob(spool, pending)).status).toBe('done');
  });

  it('every state written along the way matches the shipped schema: pending, running, done, error, cancelled', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const blocker = await gateJob(spool);
    const queued = await startJob(spool, ['true']);
    const cancelled = await startJob(spool, ['true']);
    await until(() => jobState(spool, blocker.id).worker !== null, 20_000, 'the worker to be recorded');
    const seen = [jobState(spool, blocker.id), jobState(spool, queued)];
    expect(seen.map((state) => state.status)).toEqual(['running', 'pending']);
    expect(cli(spool, ['cancel', cancelled]).code).toBe(0);
    blocker.release();
    for (const argv of [['false'], ['no-such-binary-here']]) await waitJob(spool, await startJob(spool, argv));
    await waitJob(spool, queued);
    const states = [...seen, ...allStates(spool)];
    expect(new Set(states.map((state) => state.status))).toEqual(new Set(['pending', 'running', 'done', 'error', 'cancelled']));
    for (const state of states) assertSchemaValid(state);
  });

  it('config shows the effective settings; a bad config.json is reported, not used', () => {
    const spool = makeSpool({ concurrency: 3 });
    const shown = JSON.parse(cli(spool, ['config', '--json']).stdout);
    expect(shown.config).toMatchObject({ concurrency: 3, exclusive_cwd: true });
    expect(JSON.parse(cli(spool, ['config', '--json'], { env: { AGENT_ASYNC_CONCURRENCY: '5' } }).stdout).config.concurrency).toBe(5);

    fs.writeFileSync(path.join(spool.home, 'config.json'), '{"concurrency": 0}');
    const bad = cli(spool, ['start', 'exec', '--', 'true']);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/config\.json: concurrency: Too small/);
    fs.writeFileSync(path.join(spool.home, 'config.json'), '{"concurency": 2}');
    expect(cli(spool, ['ls']).stderr).toMatch(/unknown key "concurency"; allowed: concurrency/);
    fs.writeFileSync(path.join(spool.home, 'config.json'), '{not json');
    expect(cli(spool, ['ls']).stderr).toMatch(/config\.json: not valid JSON/);
  });

  it('logs --tail counts lines and --json prints JSON lines; gc --dry-run lists the ids; config says where each value comes from', async () => {
    const spool = makeSpool({ concurrency: 2 });
    const id = await startJob(spool, ['sh', '-c', 'printf "one\\ntwo\\nthree\\nfour\\n"']);
    await waitJob(spool, id);
    expect(cli(spool, ['logs', id, '--tail', '3']).stdout).toBe('two\nthree\nfour\n');
    const pages = cli(spool, ['logs', id, '--json']).stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(pages).toEqual([{ job_id: id, offset: 0, next_offset: 19, data: 'one\ntwo\nthree\nfour\n' }]);

    const dry = cli(spool, ['gc', '--keep', '0', '--dry-run']);
    expect(dry.stdout).toBe(`would remove 1 finished jobs; kept 0; 0 pending or running untouched\n  ${id}\n`);

    const shown = cli(spool, ['config'], { env: { ...spool.env, AGENT_ASYNC_PROGRESS_SECONDS: '7' } }).stdout;
    expect(shown).toMatch(/^home +\S+ +\(AGENT_ASYNC_HOME\)$/m);
    expect(shown).toMatch(/^concurrency +2 +config\.json /m);
    expect(shown).toMatch(/^progress_seconds +7 +AGENT_ASYNC_PROGRESS_SECONDS /m);
    expect(shown).toMatch(/^job_timeout_seconds +10800 +default /m);
    const json = JSON.parse(cli(spool, ['config', '--json', '--home', spool.home]).stdout);
    expect(json).toMatchObject({ home_from: 'flag', from: { concurrency: 'config.json', job_timeout_seconds: 'default' } });
  });

  it('spool folders are 0700 and files 0600', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['sh', '-c', 'echo hi']);
    await waitJob(spool, id);
    const check = (file: string, mode: number): void => {
      expect((fs.statSync(file).mode & 0o777).toString(8), file).toBe(mode.toString(8));
    };
    for (const dir of ['', 'jobs', 'tmp', 'active', 'index', `jobs/${id}`, `jobs/${id}/claim.1`]) check(path.join(spool.home, dir), 0o700);
    for (const file of ['state.json', 'output.log', 'exit.json', 'claim.1/owner.json']) check(path.join(spool.home, 'jobs', id, file), 0o600);
    check(path.join(spool.home, 'runner.json'), 0o600);
  });
});
