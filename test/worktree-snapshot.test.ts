import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../lib/errors.js';
import { applyChanges, createWorktree, finishWorktree, probeRepository, snapshot, type WorktreeContext } from '../lib/worktree/index.js';
import { fingerprint, git, isolateGitConfig, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';

/** Snapshots and probes against real repositories: what is recorded, and what is refused. */

beforeAll(() => {
  isolateGitConfig();
});
afterAll(removeScratch);

function userError(error: unknown): UserError {
  expect(error).toBeInstanceOf(UserError);
  return error as UserError;
}

async function refusal(promise: Promise<unknown>): Promise<UserError> {
  return userError(await promise.then(() => null, (error: unknown) => error));
}

/** path → "mode sha" of a commit's tree. */
function treeOf(repo: string, commit: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of git(repo, 'ls-tree', '-r', commit).split('\n').filter(Boolean)) {
    const [meta, file] = line.split('\t');
    const [mode, , sha] = meta!.split(' ');
    entries.set(file!, `${mode} ${sha}`);
  }
  return entries;
}

describe('snapshot of the work tree', () => {
  it('records staged, unstaged, untracked, deleted, renamed, binary, mode and symlink changes, and touches nothing', async () => {
    const { repo, home } = scratch();
    const ctx: WorktreeContext = { home };
    const binary = Buffer.from([0, 1, 2, 3, 255, 254, 0, 10]);
    const head = makeRepo(repo, {
      'staged.txt': 'one\n', 'unstaged.txt': 'one\n', 'both.txt': 'one\n', 'gone.txt': 'bye\n', 'gone-unstaged.txt': 'bye\n',
      'old-name.txt': 'moving file\nwith two lines\n', 'script.sh': 'echo hi\n', 'image.bin': binary, '.gitignore': 'ignored.log\n',
    });
    fs.symlinkSync('staged.txt', path.join(repo, 'link'));
    git(repo, 'add', 'link');
    git(repo, 'commit', '-q', '-m', 'link');
    const linkCommit = git(repo, 'rev-parse', 'HEAD');
    write(repo, 'staged.txt', 'two\n');
    git(repo, 'add', 'staged.txt');
    write(repo, 'unstaged.txt', 'two\n');
    write(repo, 'both.txt', 'staged version\n');
    git(repo, 'add', 'both.txt');
    write(repo, 'both.txt', 'working version\n');
    git(repo, 'rm', '-q', 'gone.txt');
    fs.rmSync(path.join(repo, 'gone-unstaged.txt'));
    git(repo, 'mv', 'old-name.txt', 'new-name.txt');
    write(repo, 'image.bin', Buffer.from([0, 9, 9, 9, 255, 0]));
    fs.chmodSync(path.join(repo, 'script.sh'), 0o755);
    fs.rmSync(path.join(repo, 'link'));
    fs.symlinkSync('unstaged.txt', path.join(repo, 'link'));
    write(repo, 'untracked/new.txt', 'brand new\n');
    write(repo, 'ignored.log', 'noise\n');
    git(repo, 'stash', 'list');
    const before = await fingerprint(repo);

    const taken = await snapshot(ctx, path.join(repo, 'untracked'), 'snap1');

    expect(await fingerprint(repo)).toEqual(before);
    expect(taken).toMatchObject({ id: 'snap1', repo_root: repo, prefix: 'untracked', from: 'work_tree', ref: 'refs/heads/main', head: linkCommit, submodules: [] });
    expect(head).not.toBe(linkCommit);
    expect(git(repo, 'rev-parse', 'refs/agent-async/snap1/base')).toBe(taken.base_commit);
    expect(git(repo, 'rev-parse', `${taken.base_commit}^`)).toBe(linkCommit);
    const tree = treeOf(repo, taken.base_commit);
    const show = (file: string): string => git(repo, 'show', `${taken.base_commit}:${file}`);
    expect(show('staged.txt')).toBe('two');
    expect(show('unstaged.txt')).toBe('two');
    expect(show('both.txt')).toBe('working version');
    expect(tree.has('gone.txt')).toBe(false);
    expect(tree.has('gone-unstaged.txt')).toBe(false);
    expect(tree.has('old-name.txt')).toBe(false);
    expect(show('new-name.txt')).toBe('moving file\nwith two lines');
    expect(git(repo, 'diff-tree', '-r', '-M', '--name-status', linkCommit, taken.base_commit)).toContain('R100\told-name.txt\tnew-name.txt');
    expect(tree.get('script.sh')?.startsWith('100755')).toBe(true);
    expect(tree.get('link')?.startsWith('120000')).toBe(true);
    expect(show('link')).toBe('unstaged.txt');
    expect(show('untracked/new.txt')).toBe('brand new');
    expect(tree.has('ignored.log')).toBe(false);
    const binarySha = git(repo, 'hash-object', 'image.bin');
    expect(tree.get('image.bin')).toBe(`100644 ${binarySha}`);
    expect(git(repo, 'log', '-1', '--format=%an <%ae>|%cn <%ce>', taken.base_commit)).toBe('agent-async <agent-async@localhost>|agent-async <agent-async@localhost>');
  });

  it('takes an empty repository as a root commit and creates no index', async () => {
    const { repo, home } = scratch();
    git(repo, 'init', '-q');
    write(repo, 'a.txt', 'first\n');
    const before = await fingerprint(repo);
    const taken = await snapshot({ home }, repo, 'empty1');
    expect(await fingerprint(repo)).toEqual(before);
    expect(fs.existsSync(path.join(repo, '.git', 'index'))).toBe(false);
    expect(taken.head).toBeNull();
    expect(git(repo, 'rev-list', '--parents', '-n1', taken.base_commit)).toBe(taken.base_commit);
    expect(git(repo, 'show', `${taken.base_commit}:a.txt`)).toBe('first');
  });

  it('snapshots a detached HEAD with the detached commit as parent', async () => {
    const { repo, home } = scratch();
    makeRepo(repo);
    write(repo, 'README.md', 'second\n');
    git(repo, 'commit', '-qam', 'second');
    const first = git(repo, 'rev-parse', 'HEAD~1');
    git(repo, 'checkout', '-q', '--detach', first);
    write(repo, 'extra.txt', 'x\n');
    const before = await fingerprint(repo);
    const taken = await snapshot({ home }, repo, 'detached1');
    expect(await fingerprint(repo)).toEqual(before);
    expect(taken.ref).toBeNull();
    expect(taken.head).toBe(first);
    expect(git(repo, 'rev-parse', `${taken.base_commit}^`)).toBe(first);
    expect(git(repo, 'show', `${taken.base_commit}:README.md`)).toBe('hello');
  });

  it('snapshots from a linked worktree of the user, using that worktree\'s index', async () => {
    const { repo, home, base } = scratch();
    makeRepo(repo, { 'a.txt': 'a\n' });
    const linked = path.join(base, 'linked');
    git(repo, 'worktree', 'add', '-q', '-b', 'side', linked);
    write(linked, 'a.txt', 'edited in linked\n');
    git(linked, 'add', 'a.txt');
    const before = await fingerprint(linked);
    const taken = await snapshot({ home }, linked, 'linked1');
    expect(await fingerprint(linked)).toEqual(before);
    expect(taken.repo_root).toBe(linked);
    expect(taken.ref).toBe('refs/heads/side');
    expect(git(repo, 'show', `${taken.base_commit}:a.txt`)).toBe('edited in linked');
  });

  it('leaves a split index alone and writes no shared index file into .git', async () => {
    const { repo, home } = scratch();
    makeRepo(repo, { 'a.txt': 'a\n' });
    git(repo, 'config', 'core.splitIndex', 'true');
    git(repo, 'update-index', '--split-index');
    write(repo, 'a.txt', 'changed\n');
    const sharedBefore = fs.readdirSync(path.join(repo, '.git')).filter((name) => name.startsWith('sharedindex'));
    const before = await fingerprint(repo);
    const taken = await snapshot({ home }, repo, 'split1');
    expect(await fingerprint(repo)).toEqual(before);
    expect(fs.readdirSync(path.join(repo, '.git')).filter((name) => name.startsWith('sharedindex'))).toEqual(sharedBefore);
    expect(git(repo, 'show', `${taken.base_commit}:a.txt`)).toBe('changed');
  });

  it('does not record files outside a sparse-checkout cone as deleted', async () => {
    const { repo, home } = scratch();
    makeRepo(repo, { 'in/a.txt': 'a\n', 'out/b.txt': 'b\n', 'top.txt': 't\n' });
    git(repo, 'sparse-checkout', 'set', '--cone', 'in');
    expect(fs.existsSync(path.join(repo, 'out/b.txt'))).toBe(false);
    write(repo, 'in/a.txt', 'edited\n');
    const taken = await snapshot({ home }, repo, 'sparse1');
    expect(git(repo, 'show', `${taken.base_commit}:out/b.txt`)).toBe('b');
    expect(git(repo, 'show', `${taken.base_commit}:in/a.txt`)).toBe('edited');
  });

  it('works under a hostile user config (signing required, hooks that fail, odd diff settings)', async () => {
    const { repo, home } = scratch();
    makeRepo(repo, { 'a.txt': 'a\n' });
    const hooks = path.join(repo, '.git', 'hooks');
    for (const hook of ['pre-commit', 'commit-msg', 'post-checkout', 'prepare-commit-msg']) write(hooks, hook, '#!/bin/sh\nexit 1\n', 0o755);
    const hostile: [string, string][] = [
      ['commit.gpgSign', 'true'], ['diff.noprefix', 'true'], ['color.ui', 'always'], ['user.useConfigOnly', 'true'], ['user.email', ''],
      ['apply.whitespace', 'error'], ['diff.mnemonicPrefix', 'true'], ['diff.external', 'false'],
    ];
    for (const [key, value] of hostile) git(repo, 'config', key, value);
    write(repo, 'a.txt', 'b\n');
    const taken = await snapshot({ home }, repo, 'hostile1');
    expect(git(repo, 'show', `${taken.base_commit}:a.txt`)).toBe('b');
    const record = await createWorktree({ home }, taken);
    write(record.path, 'a.txt', 'b\ntrailing whitespace   \n');
    const { changes } = await finishWorktree({ home }, { id: 'hostile1', repo_root: repo }, path.join(home, 'h.patch'));
    expect(changes.files).toEqual([{ path: 'a.txt', status: 'modified', insertions: 1, deletions: 0 }]);
    expect(fs.readFileSync(path.join(home, 'h.patch'), 'utf8')).toContain('--- a/a.txt');
    const applied = await applyChanges({ home }, { id: 'hostile1', repo_root: repo }, repo);
    expect(applied.kind).toBe('applied');
    expect(read(repo, 'a.txt')).toBe('b\ntrailing whitespace   \n');
  });
});

describe('snapshot from a committed base', () => {
  it('resolves a branch, tag or expression to its commit', async () => {
    const { repo, home } = scratch();
    const first = makeRepo(repo);
    write(repo, 'README.md', 'second\n');
    git(repo, 'commit', '-qam', 'second');
    git(repo, 'tag', 'v1', first);
    write(repo, 'dirty.txt', 'not in any base\n');
    const before = await fingerprint(repo);
    const fromTag = await snapshot({ home }, repo, 'base1', { base: 'v1' });
    const fromExpression = await snapshot({ home }, repo, 'base2', { base: 'HEAD~1' });
    expect(await fingerprint(repo)).toEqual(before);
    expect(fromTag).toMatchObject({ base_commit: first, from: 'ref', ref: 'v1' });
    expect(fromExpression.base_commit).toBe(first);
    expect(git(repo, 'rev-parse', 'refs/agent-async/base1/base')).toBe(first);
  });

  it('refuses an unknown or malformed base, naming the field', async () => {
    const { repo, home } = scratch();
    makeRepo(repo);
    for (const base of ['no-such-branch', '-x', '', 'a\nb']) {
      const error = await refusal(snapshot({ home }, repo, 'badbase', { base }));
      expect(error.field).toBe('base');
      expect(error.message).toMatch(/^base: /);
    }
    expect(git(repo, 'for-each-ref', 'refs/agent-async/')).toBe('');
  });
});

describe('refusals', () => {
  it('refuses a folder outside any repository, a bare repository and a .git folder, naming cwd', async () => {
    const { base, home } = scratch();
    const plain = path.join(base, 'plain');
    fs.mkdirSync(plain);
    const notRepo = await refusal(probeRepository({ home }, plain));
    expect(notRepo.field).toBe('cwd');
    expect(notRepo.message).toContain('is not inside a git work tree');

    const bare = path.join(base, 'bare.git');
    git(base, 'init', '-q', '--bare', bare);
    const bareError = await refusal(snapshot({ home }, bare, 'bare1'));
    expect(bareError.field).toBe('cwd');
    expect(bareError.message).toContain('bare git repository');

    const repo = path.join(base, 'repo');
    makeRepo(repo);
    const insideGit = await refusal(probeRepository({ home }, path.join(repo, '.git')));
    expect(insideGit.field).toBe('cwd');
    expect(insideGit.message).toContain('.git folder');
  });

  it('refuses a spool inside the work tree', async () => {
    const { repo } = scratch();
    makeRepo(repo);
    const error = await refusal(snapshot({ home: path.join(repo, 'spool-inside') }, repo, 'inside1'));
    expect(error.field).toBe('cwd');
    expect(error.message).toContain('AGENT_ASYNC_HOME');
  });

  it('refuses when git is missing or too old, naming isolation', async () => {
    const { base, repo, home } = scratch();
    makeRepo(repo);
    const missing = await refusal(snapshot({ home, git: path.join(base, 'no-git-here') }, repo, 'nogit'));
    expect(missing.field).toBe('isolation');
    expect(missing.message).toContain('was not found');
    const old = path.join(base, 'old-git');
    write(base, 'old-git', '#!/bin/sh\necho "git version 2.20.1"\n', 0o755);
    const tooOld = await refusal(snapshot({ home, git: old }, repo, 'oldgit'));
    expect(tooOld.field).toBe('isolation');
    expect(tooOld.message).toContain('needs git 2.38 or newer');
    expect(tooOld.message).toContain('2.20.1');
  });

  it('refuses submodules and nested repositories unless told to leave them empty', async () => {
    const { repo, home } = scratch();
    makeRepo(repo);
    const nested = path.join(repo, 'vendor', 'lib');
    fs.mkdirSync(nested, { recursive: true });
    makeRepo(nested, { 'lib.c': 'int x;\n' });
    const before = await fingerprint(repo);
    const error = await refusal(snapshot({ home }, repo, 'sub1'));
    expect(error.field).toBe('isolation');
    expect(error.message).toContain('"vendor/lib"');
    expect(error.message).toContain('worktree.submodules "empty"');
    expect(git(repo, 'for-each-ref', 'refs/agent-async/')).toBe('');
    const taken = await snapshot({ home }, repo, 'sub2', { submodules: 'empty' });
    expect(taken.submodules).toEqual(['vendor/lib']);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('refuses when a required clean filter fails (as with git-lfs missing), changing nothing', async () => {
    const { repo, home } = scratch();
    makeRepo(repo, { '.gitattributes': '*.dat filter=broken\n' });
    git(repo, 'config', 'filter.broken.clean', 'false');
    git(repo, 'config', 'filter.broken.required', 'true');
    write(repo, 'big.dat', 'payload\n');
    const before = await fingerprint(repo);
    const error = await refusal(snapshot({ home }, repo, 'filter1'));
    expect(error.field).toBe('isolation');
    expect(error.message).toContain('"broken" filter failed');
    expect(await fingerprint(repo)).toEqual(before);
    expect(fs.readdirSync(path.join(home, 'worktrees'))).toEqual([]);
  });

  it('refuses a second snapshot for the same id', async () => {
    const { repo, home } = scratch();
    makeRepo(repo);
    const first = await snapshot({ home }, repo, 'twice1');
    const error = await refusal(snapshot({ home }, repo, 'twice1'));
    expect(error.code).toBe('conflict');
    expect(git(repo, 'rev-parse', 'refs/agent-async/twice1/base')).toBe(first.base_commit);
  });

  it('describes a subdirectory cwd', async () => {
    const { repo, home } = scratch();
    makeRepo(repo, { 'pkg/app/main.c': 'int main;\n' });
    const probe = await probeRepository({ home }, path.join(repo, 'pkg', 'app'));
    expect(probe).toMatchObject({ root: repo, prefix: 'pkg/app', head: git(repo, 'rev-parse', 'HEAD'), branch: 'refs/heads/main' });
    expect(read(repo, 'pkg/app/main.c')).toBe('int main;\n');
  });
});
