import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyChanges, createWorktree, finishWorktree, snapshot, type WorktreeContext } from '../lib/worktree/index.js';
import {
  cacheRepository, checkRemoteName, checkRemoteUrl, deleteRemoteRefs, fetchBase, fetchResult, pushBase, pushResult, remoteRefs,
} from '../lib/worktree/remote.js';
import { git, isolateGitConfig, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';

/**
 * An isolated job that runs on another host: the snapshot goes to a shared remote (a bare
 * repository in a temp folder here), the other host runs it in a worktree of its own cache of
 * that remote and pushes the result back, and the submitting host applies it. Real git, two
 * spools standing for two hosts.
 */

beforeAll(() => {
  isolateGitConfig();
});
afterAll(removeScratch);

interface Hosts {
  remote: string;
  repo: string;
  a: WorktreeContext;
  b: WorktreeContext;
}

function twoHosts(): Hosts {
  const { base, repo, home } = scratch();
  const remote = path.join(base, 'shared.git');
  git(base, 'init', '-q', '--bare', remote);
  makeRepo(repo, { 'src/app.txt': 'line 1\nline 2\nline 3\n', 'README.md': 'hello\n' });
  git(repo, 'remote', 'add', 'origin', remote);
  git(repo, 'push', '-q', 'origin', 'HEAD:refs/heads/main');
  const homeB = path.join(base, 'host-b');
  fs.mkdirSync(homeB, { mode: 0o700 });
  return { remote, repo, a: { home }, b: { home: homeB } };
}

function refsOf(repo: string): string {
  return git(repo, 'for-each-ref', '--format=%(refname) %(objectname)');
}

/** Host A submits (snapshot + push), host B runs `work` in its worktree and pushes the branch back. */
async function runElsewhere(hosts: Hosts, id: string, work: (wt: string) => void): Promise<{ url: string; head: string; base: string }> {
  const taken = await snapshot(hosts.a, path.join(hosts.repo, 'src'), id);
  const { url, base_commit: base } = await pushBase(hosts.a, hosts.repo, 'origin', id);
  expect(base).toBe(taken.base_commit);
  const { cache } = await fetchBase(hosts.b, url, id, base);
  const record = await createWorktree(hosts.b, { id, repo_root: cache, prefix: 'src' });
  expect(record.workdir).toBe(path.join(record.path, 'src'));
  work(record.path);
  const finished = await finishWorktree(hosts.b, { id, repo_root: cache }, path.join(hosts.b.home, `${id}.patch`));
  const head = await pushResult(hosts.b, cache, url, id);
  expect(head).toBe(finished.changes.head_commit);
  return { url, head, base };
}

describe('an isolated job run on another host through a shared remote', () => {
  it('carries the uncommitted work there, runs it in the other host\'s cache, and its result is applied back here', async () => {
    const hosts = twoHosts();
    write(hosts.repo, 'src/app.txt', 'line 1\nline 2 (uncommitted here)\nline 3\n');
    const remoteBranchesBefore = git(hosts.remote, 'for-each-ref', '--format=%(refname)', 'refs/heads');
    const { url, head } = await runElsewhere(hosts, 'remote1', (wt) => {
      // the worker on host B sees the submitter's uncommitted line
      expect(read(wt, 'src/app.txt')).toContain('line 2 (uncommitted here)');
      write(wt, 'src/app.txt', 'line 1\nline 2 (uncommitted here)\nline 3\nline 4 from host b\n');
      write(wt, 'src/new.txt', 'made on host b\n');
    });
    // the shared remote got only refs under refs/agent-async/; its branches are as they were
    expect(git(hosts.remote, 'for-each-ref', '--format=%(refname)', 'refs/heads')).toBe(remoteBranchesBefore);
    expect(refsOf(hosts.remote)).toContain(remoteRefs('remote1').result);
    // host B's cache is in its own spool, not in the user's repository
    expect(fs.readdirSync(path.join(hosts.b.home, 'repos')).length).toBe(1);

    await fetchResult(hosts.a, hosts.repo, url, 'remote1', head);
    expect(git(hosts.repo, 'rev-parse', 'refs/heads/agent-async/remote1')).toBe(head);
    const applied = await applyChanges(hosts.a, { id: 'remote1', repo_root: hosts.repo }, hosts.repo);
    expect(applied.kind).toBe('applied');
    expect(read(hosts.repo, 'src/app.txt')).toBe('line 1\nline 2 (uncommitted here)\nline 3\nline 4 from host b\n');
    expect(read(hosts.repo, 'src/new.txt')).toBe('made on host b\n');
    // fetching again is a no-op
    await fetchResult(hosts.a, hosts.repo, url, 'remote1', head);

    await deleteRemoteRefs(hosts.a, hosts.repo, url, 'remote1');
    expect(refsOf(hosts.remote)).not.toContain('refs/agent-async/remote1/');
    await deleteRemoteRefs(hosts.a, hosts.repo, url, 'remote1'); // nothing left: fine
  });

  it('never overwrites a local branch that holds something else, and says so (it moves one only forward)', async () => {
    const hosts = twoHosts();
    const { url, head } = await runElsewhere(hosts, 'remote2', (wt) => write(wt, 'README.md', 'from b\n'));
    // work committed here on the job's branch, which the job's result does not build on
    const local = git(hosts.repo, 'commit-tree', 'HEAD^{tree}', '-p', 'HEAD', '-m', 'committed here');
    git(hosts.repo, 'branch', 'agent-async/remote2', local);
    await expect(fetchResult(hosts.a, hosts.repo, url, 'remote2', head)).rejects.toThrow(/branch agent-async\/remote2 .* nothing was overwritten/);
    expect(git(hosts.repo, 'rev-parse', 'agent-async/remote2')).toBe(local);
    // one the result builds on (the snapshot it started from, a result fetched before) moves forward
    git(hosts.repo, 'branch', '-f', 'agent-async/remote2', 'HEAD');
    await fetchResult(hosts.a, hosts.repo, url, 'remote2', head);
    expect(git(hosts.repo, 'rev-parse', 'agent-async/remote2')).toBe(head);
  });

  it('refuses a snapshot on the remote that is not the one the job was submitted with', async () => {
    const hosts = twoHosts();
    await snapshot(hosts.a, hosts.repo, 'remote3');
    const { url } = await pushBase(hosts.a, hosts.repo, 'origin', 'remote3');
    const other = git(hosts.repo, 'rev-parse', 'HEAD');
    await expect(fetchBase(hosts.b, url, 'remote3', other)).rejects.toThrow(/not the snapshot/);
  });

  it('one cache per remote URL, made once even when two calls race', async () => {
    const hosts = twoHosts();
    const [first, second] = await Promise.all([cacheRepository(hosts.b, hosts.remote), cacheRepository(hosts.b, hosts.remote)]);
    expect(first).toBe(second);
    expect(fs.readdirSync(path.join(hosts.b.home, 'repos'))).toEqual([path.basename(first)]);
  });
});

describe('input from another host or the user', () => {
  it('names the field and what is allowed for a bad remote name, a missing remote and a bad URL', async () => {
    const hosts = twoHosts();
    await snapshot(hosts.a, hosts.repo, 'bad1');
    for (const name of ['-oProxyCommand=x', '', '../x', 'a b']) expect(() => checkRemoteName(name)).toThrow(/^remote: .* is not a git remote name; expected/);
    await expect(pushBase(hosts.a, hosts.repo, 'upstream', 'bad1')).rejects.toThrow(/^remote: the repository at .* has no remote named "upstream"/);
    for (const url of ['--upload-pack=touch /tmp/x', 'ssh://h/r\n', '']) expect(() => checkRemoteUrl(url)).toThrow(/^remote_url: .* is not a git URL/);
  });

  it('a URL with a transport that runs a program (ext::) is refused by git, and runs nothing', async () => {
    const hosts = twoHosts();
    const marker = path.join(os.tmpdir(), `aa-ext-${process.pid}-${Date.now()}`);
    await expect(fetchBase(hosts.b, `ext::touch ${marker}`, 'bad2', '0'.repeat(40))).rejects.toThrow(/transport 'ext' not allowed/);
    expect(fs.existsSync(marker)).toBe(false);
  });
});
