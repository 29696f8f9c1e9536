import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { locateSpool } from '../lib/context.js';
import { FleetQueue, getJob } from '../lib/fleet/index.js';
import * as jobs from '../lib/jobs.js';
import { remoteRefs } from '../lib/worktree/index.js';
import { Hosts, registered, terminal, type Host } from './helpers/fleet-hosts.js';
import { git, isolateGitConfig, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';
import { need, useTestCluster } from './helpers/pg-cluster.js';
import { ROOT, cleanupSpools, cli, makeSpool, type TestSpool } from './helpers/spool.js';

/**
 * Isolated jobs across hosts (fleet mode): host A submits an isolated codex-stub job with
 * lib/jobs in this process; its snapshot goes to a shared bare repository (the repository's
 * `origin`, a path in a temp folder); host B, a real `agent-async runner` process with its own
 * spool, runs it in a worktree of its cache of that remote and pushes the branch back; A
 * applies it. A's own runner never joins the queue (its spool has no password for it), so A
 * is a submitter only. One runner host serves every test of the file.
 */
const pg = await useTestCluster();
const EDIT = 'line from host b\n';

let queue: FleetQueue | undefined;
let hosts: Hosts | undefined;
let hostB: Host | undefined;
let database = '';

beforeAll(async () => {
  isolateGitConfig();
  if (!pg.cluster) return;
  process.env.PGPASSFILE = pg.cluster.pgpassFile;
  database = await pg.cluster.createDatabase('isolated');
  queue = await FleetQueue.open(pg.cluster.url(database), { role: 'test' });
  // host B finds a codex that appends EDIT to app.txt in its cwd (the job's worktree)
  const bin = fs.mkdtempSync(path.join(path.dirname(pg.cluster.pgpassFile), 'bin-'));
  fs.symlinkSync(path.join(ROOT, 'test/stubs/agent-stub.mjs'), path.join(bin, 'codex'));
  const saved = { PATH: process.env.PATH, STUB_EDIT_FILE: process.env.STUB_EDIT_FILE, STUB_EDIT_TEXT: process.env.STUB_EDIT_TEXT };
  Object.assign(process.env, { PATH: `${bin}${path.delimiter}${process.env.PATH}`, STUB_EDIT_FILE: 'app.txt', STUB_EDIT_TEXT: EDIT });
  hosts = new Hosts(pg.cluster, database);
  hostB = hosts.start('hb', { leaseSeconds: 8 });
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await registered(queue, ['hb']);
}, 120_000);

afterEach((context) => {
  if (context.task.result?.state === 'fail' && hosts && hostB) process.stderr.write(`--- hb\n${hosts.logOf(hostB)}`);
});

afterAll(async () => {
  hosts?.cleanup();
  await jobs.closeStores();
  await queue?.close();
  cleanupSpools();
  removeScratch();
});

interface Submitter {
  spool: TestSpool;
  ctx: jobs.JobsContext;
  repo: string;
  /** The shared bare repository, the repo's `origin`. */
  remote: string;
}

/** Host A: a spool in fleet mode (host "ha") and a repository whose origin is a bare repository both hosts reach. */
function submitter(options: { remote?: boolean; config?: Record<string, unknown> } = {}): Submitter {
  const spool = makeSpool({ queue_url: need(pg).url(database), host_name: 'ha', ...options.config });
  delete spool.env.PGPASSFILE; // the runner a submit starts here never joins the queue
  const ctx = jobs.openContext({ home: spool.home, env: spool.env });
  const { base, repo } = scratch();
  makeRepo(repo, { 'app.txt': 'line 1\n', 'README.md': 'hello\n' });
  const remote = path.join(base, 'shared.git');
  if (options.remote !== false) {
    git(base, 'init', '-q', '--bare', remote);
    git(repo, 'remote', 'add', 'origin', remote);
    git(repo, 'push', '-q', 'origin', 'HEAD:refs/heads/main');
  }
  return { spool, ctx, repo, remote };
}

function agentRefs(repo: string, id: string): string {
  return git(repo, 'for-each-ref', '--format=%(refname)', `refs/agent-async/${id}/`, `refs/heads/agent-async/${id}`);
}

async function submitIsolated(a: Submitter, host?: string): Promise<string> {
  const submitted = await jobs.submit(a.ctx, { agent: 'codex', prompt: 'add a line', cwd: a.repo, isolation: 'worktree', ...(host ? { host } : {}) });
  return submitted.job_id;
}

function localState(host: Host, id: string): any {
  return JSON.parse(fs.readFileSync(path.join(host.home, 'jobs', id, 'state.json'), 'utf8'));
}

describe('config fleet_remote', () => {
  it('takes a remote name or "", and refuses anything else naming the key', () => {
    const spool = makeSpool({ fleet_remote: '--upload-pack=evil' });
    expect(() => loadConfig(locateSpool(spool.home, spool.env), spool.env)).toThrow(/fleet_remote: is not a git remote name/);
    for (const name of ['origin', 'team/shared', '']) {
      const fine = makeSpool({ fleet_remote: name });
      expect(loadConfig(locateSpool(fine.home, fine.env), fine.env).fleet_remote).toBe(name);
    }
    const unset = makeSpool();
    expect(loadConfig(locateSpool(unset.home, unset.env), unset.env).fleet_remote).toBe('origin');
  });
});

describe.skipIf(!pg.cluster)(`isolated jobs across hosts ${pg.skip ?? ''}`, () => {
  it('a job submitted on A and pinned to B runs in B\'s cache clone; apply on A brings its change; discard removes its refs on the remote', async () => {
    const a = submitter();
    write(a.repo, 'README.md', 'hello, uncommitted on a\n');
    const remoteBranches = git(a.remote, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads');
    const id = await submitIsolated(a, 'hb');
    const ended = await terminal(queue!, id);
    expect(ended.state.status).toBe('done');
    expect(ended.runnerHost).toBe('hb');
    expect(ended.submittedHost).toBe('ha');

    // the queue keeps the submitter's facts; B's own state.json has its runner-local paths
    const request = ended.state.request;
    expect(request.cwd).toBe(a.repo);
    expect(request.worktree).toMatchObject({ id, repo_root: a.repo, remote_url: a.remote });
    const local = localState(hostB!, id);
    expect(local.request.worktree.repo_root.startsWith(path.join(hostB!.home, 'repos') + path.sep)).toBe(true);
    expect(local.request.cwd).toBe(hostB!.home);
    // its worktree is gone from B, and B's cache forgot the job once the branch was pushed
    expect(fs.readdirSync(path.join(hostB!.home, 'worktrees')).filter((name) => name.startsWith(id))).toEqual([]);
    expect(agentRefs(local.request.worktree.repo_root, id)).toBe('');

    const changes = (ended.state as any).changes;
    expect(changes.pushed_to).toEqual({ url: a.remote, ref: remoteRefs(id).result, commit: changes.head_commit });
    expect(changes.files.map((file: { path: string }) => file.path)).toEqual(['app.txt']);
    expect(git(a.remote, 'rev-parse', remoteRefs(id).result)).toBe(changes.head_commit);
    // only refs/agent-async/ on the remote changed
    expect(git(a.remote, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads')).toBe(remoteBranches);

    // nothing of it on A yet
    expect(read(a.repo, 'app.txt')).toBe('line 1\n');
    expect(git(a.repo, 'branch', '--list', `agent-async/${id}`)).toBe('');

    const diff = await jobs.diffJob(a.ctx, { job_id: id });
    expect(diff.text).toContain(`+${EDIT.trimEnd()}`);
    expect(diff.total_bytes).toBe(changes.patch_bytes);

    const viewer = { ...a.spool, env: { ...a.spool.env, PGPASSFILE: need(pg).pgpassFile } };
    const shown = cli(viewer, ['diff', id], { cwd: a.repo });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`+${EDIT.trimEnd()}`);
    const applied = cli(viewer, ['apply', id], { cwd: a.repo });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(read(a.repo, 'app.txt')).toBe(`line 1\n${EDIT}`);
    expect(read(a.repo, 'README.md')).toBe('hello, uncommitted on a\n');
    expect(git(a.repo, 'rev-parse', `refs/heads/agent-async/${id}`)).toBe(changes.head_commit);
    const recorded = await getJob(queue!.db, id);
    expect((recorded!.state as any).changes.applied.into).toBe(a.repo);
    await expect(jobs.applyJob(a.ctx, { job_id: id })).rejects.toThrow(/already applied/);

    const discarded = await jobs.discardJobChanges(a.ctx, { job_id: id });
    expect(discarded.removed).toContain(`refs/heads/agent-async/${id}`);
    expect(git(a.remote, 'for-each-ref', `refs/agent-async/${id}/`)).toBe('');
    expect(agentRefs(a.repo, id)).toBe('');
    expect((discarded.state as any).changes.discarded_at).toEqual(expect.any(String));
  });

  it('an isolated job pinned to another host is refused without a remote (or with fleet_remote ""), and nothing is queued; pinned here, nothing is pushed', async () => {
    const bare = submitter({ remote: false });
    const refusal = submitIsolated(bare, 'hb');
    await expect(refusal).rejects.toMatchObject({ code: 'bad_input', field: 'host' });
    await expect(refusal).rejects.toThrow(/no remote "origin" \(config fleet_remote\)/);
    expect(git(bare.repo, 'for-each-ref', 'refs/agent-async/')).toBe('');

    const off = submitter({ config: { fleet_remote: '' } });
    await expect(submitIsolated(off, 'hb')).rejects.toThrow(/^host: .*fleet_remote is ""/);
    expect(git(off.repo, 'for-each-ref', 'refs/agent-async/')).toBe('');
    expect(git(off.remote, 'for-each-ref', 'refs/agent-async/')).toBe('');
    const queued = await jobs.listJobs(off.ctx, {});
    expect(queued.filter((snap) => snap.kind === 'ok' && [bare.repo, off.repo].includes(snap.state.request.cwd))).toEqual([]);

    // a push the remote refuses is the submitter's error, and leaves nothing behind
    const refusing = submitter();
    fs.writeFileSync(path.join(refusing.remote, 'hooks', 'pre-receive'), '#!/bin/sh\necho "no snapshots here" >&2\nexit 1\n', { mode: 0o755 });
    const pushRefused = submitIsolated(refusing, 'hb');
    await expect(pushRefused).rejects.toMatchObject({ code: 'bad_input', field: 'fleet_remote' });
    await expect(pushRefused).rejects.toThrow(/could not be pushed to remote "origin".*no snapshots here/s);
    expect(git(refusing.repo, 'for-each-ref', 'refs/agent-async/')).toBe('');

    // unpinned and without a remote, it stays on the host that submitted it, as before
    const id = await submitIsolated(bare);
    expect((await getJob(queue!.db, id))!.needs.host).toBe('ha');
    await jobs.cancel(bare.ctx, { job_id: id }, { waitSeconds: 0 });

    // pinned to the host that submits it: nothing is pushed, the remote is not needed
    const home = submitter();
    const here = await getJob(queue!.db, await submitIsolated(home, 'ha'));
    expect(here!.needs.host).toBe('ha');
    expect(here!.state.request.worktree?.remote_url).toBeUndefined();
    expect(git(home.remote, 'for-each-ref', 'refs/agent-async/')).toBe('');
    await jobs.cancel(home.ctx, { job_id: here!.state.id }, { waitSeconds: 0 });
  });

  it('an unpinned isolated job with a remote is taken by another host, applied on A, and gc removes its refs on the remote', async () => {
    const a = submitter();
    const id = await submitIsolated(a);
    expect((await getJob(queue!.db, id))!.needs.host).toBeNull();
    expect(git(a.remote, 'rev-parse', remoteRefs(id).base)).toBe(git(a.repo, 'rev-parse', remoteRefs(id).base));
    const ended = await terminal(queue!, id);
    expect(ended.state.status).toBe('done');
    expect(ended.runnerHost).toBe('hb');

    // the diff fetches B's result into A's branch; the continuation then moves it forward
    expect((await jobs.diffJob(a.ctx, { job_id: id })).text).toContain(`+${EDIT.trim()}`);
    // continued on A, it goes back to B (the worker's session, its clone), working on the same branch
    await expect(jobs.continueJob(a.ctx, { job_id: id, prompt: 'more', host: 'ha' })).rejects.toMatchObject({ code: 'bad_input', field: 'host' });
    const elsewhere = { ...a.ctx, config: { ...a.ctx.config, host_name: 'hc' } };
    await expect(jobs.continueJob(elsewhere, { job_id: id, prompt: 'more' })).rejects.toMatchObject({ code: 'conflict', field: 'job_id' });
    const more = (await jobs.continueJob(a.ctx, { job_id: id, prompt: 'more' })).job_id;
    expect((await getJob(queue!.db, more))!.needs.host).toBe('hb');
    const continued = await terminal(queue!, more);
    expect(continued.state.status).toBe('done');
    expect(continued.runnerHost).toBe('hb');
    expect((continued.state as any).changes.pushed_to.ref).toBe(remoteRefs(id).result);
    expect(read(a.repo, 'app.txt')).toBe('line 1\n');

    // applied on A: both jobs' work, the parent's and the continuation's
    const answer = await jobs.applyJob(a.ctx, { job_id: more });
    expect(answer.result.kind).toBe('applied');
    expect(read(a.repo, 'app.txt')).toBe(`line 1\n${EDIT}${EDIT}`);

    const gc = await jobs.collectGarbage(a.ctx, { older_than_seconds: 0 });
    expect(gc.queue_removed).toBeGreaterThanOrEqual(1);
    expect(gc.queue_kept).toBeUndefined();
    expect(await getJob(queue!.db, id)).toBeNull();
    expect(git(a.remote, 'for-each-ref', `refs/agent-async/${id}/`)).toBe('');
  });

  it('a result the runner cannot push back is recorded with the job\'s own end, and apply on A says why', async () => {
    const a = submitter();
    // the shared remote refuses results (a server-side hook), as a remote B may not write to would
    const hook = path.join(a.remote, 'hooks', 'pre-receive');
    fs.writeFileSync(hook, '#!/bin/sh\nwhile read old new ref; do case "$ref" in */result) echo "results are refused here" >&2; exit 1;; esac; done\n', { mode: 0o755 });
    const id = await submitIsolated(a, 'hb');
    const ended = await terminal(queue!, id);
    expect(ended.state.status).toBe('done');
    const changes = (ended.state as any).changes;
    expect(changes.pushed_to).toBeNull();
    expect(changes.push_error).toMatch(/could not be pushed to .*stays as agent-async\//);
    expect(changes.warnings).toContain(changes.push_error);
    // the work is still in B's cache
    const cache = localState(hostB!, id).request.worktree.repo_root;
    expect(git(cache, 'rev-parse', `refs/heads/agent-async/${id}`)).toBe(changes.head_commit);

    await expect(jobs.applyJob(a.ctx, { job_id: id })).rejects.toMatchObject({ code: 'conflict', field: 'job_id' });
    expect(read(a.repo, 'app.txt')).toBe('line 1\n');
  });
});
