import { describe, expect, it } from 'vitest';
import { gitEnvironment, configEnv } from '../lib/worktree/git.js';
import { normalizeCopyEntries } from '../lib/worktree/create.js';
import {
  mergeFileStats, parseGitVersion, parseGitlinks, parseMergeTree, parseNameStatus, parseNumstat, parseRefs, parseWorktreeList,
} from '../lib/worktree/parse.js';
import { pageEnd } from '../lib/worktree/patch.js';

/** The pure parts of the worktree module: git's -z outputs, page cuts, config checks, the environment. */

describe('parsers of git output', () => {
  it('reads git versions of every vendor', () => {
    expect(parseGitVersion('git version 2.39.5\n')).toEqual({ major: 2, minor: 39, patch: 5, text: '2.39.5' });
    expect(parseGitVersion('git version 2.37.1 (Apple Git-137.1)')).toMatchObject({ major: 2, minor: 37, patch: 1 });
    expect(parseGitVersion('git version 2.45.1.windows.1')).toMatchObject({ major: 2, minor: 45, patch: 1 });
    expect(parseGitVersion('git version 3.0')).toMatchObject({ major: 3, minor: 0, patch: 0 });
    expect(parseGitVersion('hello')).toBeNull();
  });

  it('reads worktree lists, locked and prunable entries included', () => {
    const output = 'worktree /r\0HEAD abc\0branch refs/heads/main\0\0worktree /s/w/x\0HEAD def\0detached\0locked initializing\0\0worktree /s/w/y\0HEAD 123\0branch refs/heads/agent-async/y\0prunable gitdir file points to non-existent location\0\0';
    expect(parseWorktreeList(output)).toEqual([
      { path: '/r', head: 'abc', branch: 'refs/heads/main', bare: false, locked: null, prunable: false },
      { path: '/s/w/x', head: 'def', branch: null, bare: false, locked: 'initializing', prunable: false },
      { path: '/s/w/y', head: '123', branch: 'refs/heads/agent-async/y', bare: false, locked: null, prunable: true },
    ]);
    expect(parseWorktreeList('worktree /bare\0bare\0\0')[0]).toMatchObject({ bare: true });
  });

  it('reads merge-tree results with conflicts and messages', () => {
    const output = 'tree1\0f1\0dir/f 3\0f1\0\0' + '1\0f1\0Auto-merging\0Auto-merging f1\n\0' + '1\0f1\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in f1\n\0';
    expect(parseMergeTree(output)).toEqual({
      tree: 'tree1', conflicts: ['f1', 'dir/f 3'], messages: ['Auto-merging f1', 'CONFLICT (content): Merge conflict in f1'],
    });
    expect(parseMergeTree('tree2\0\0')).toEqual({ tree: 'tree2', conflicts: [], messages: [] });
  });

  it('reads name-status and numstat, renames and binary files included', () => {
    const statuses = parseNameStatus('M\0a.txt\0R087\0old name.txt\0new name.txt\0A\0bin.dat\0D\0gone\0T\0link\0');
    const counts = parseNumstat('3\t1\ta.txt\0' + '2\t2\t\0old name.txt\0new name.txt\0' + '-\t-\tbin.dat\0' + '0\t4\tgone\0' + '1\t1\tlink\0');
    expect(mergeFileStats(statuses, counts)).toEqual([
      { path: 'a.txt', status: 'modified', insertions: 3, deletions: 1 },
      { path: 'new name.txt', status: 'renamed', old_path: 'old name.txt', insertions: 2, deletions: 2 },
      { path: 'bin.dat', status: 'added', insertions: null, deletions: null },
      { path: 'gone', status: 'deleted', insertions: 0, deletions: 4 },
      { path: 'link', status: 'type_changed', insertions: 1, deletions: 1 },
    ]);
  });

  it('finds gitlinks in ls-files and ls-tree listings, and reads ref lists', () => {
    expect(parseGitlinks('100644 aaa 0\ta.txt\x00160000 bbb 0\tvendor/lib\0')).toEqual(['vendor/lib']);
    expect(parseGitlinks('100644 blob aaa\ta.txt\x00160000 commit bbb\tsub module\0')).toEqual(['sub module']);
    expect([...parseRefs('refs/agent-async/x/base\0abc\nrefs/heads/agent-async/x\0def\n')]).toEqual([
      ['refs/agent-async/x/base', 'abc'], ['refs/heads/agent-async/x', 'def'],
    ]);
  });
});

describe('page ends', () => {
  it('ends after the last newline, else after the last whole character', () => {
    expect(pageEnd(Buffer.from('ab\ncd\nef'), 8)).toBe(6);
    expect(pageEnd(Buffer.from('abcdef'), 4)).toBe(4);
    const euro = Buffer.from('a€b'); // a, 3 bytes, b
    expect(pageEnd(euro, 2)).toBe(1);
    expect(pageEnd(euro, 3)).toBe(1);
    expect(pageEnd(euro, 4)).toBe(4);
    expect(pageEnd(Buffer.from('€x'), 1)).toBe(3); // a character wider than the page is given whole
  });
});

describe('worktree.copy entries', () => {
  it('accepts paths and {path, mode}; names the entry at fault', () => {
    expect(normalizeCopyEntries(['.env', { path: 'node_modules/', mode: 'link' }, './a//b'])).toEqual([
      { path: '.env', mode: 'copy' }, { path: 'node_modules', mode: 'link' }, { path: 'a/b', mode: 'copy' },
    ]);
    expect(() => normalizeCopyEntries('x')).toThrow(/worktree.copy: must be a list/);
    expect(() => normalizeCopyEntries([{ path: 'a', mode: 'move' }])).toThrow(/worktree.copy\[0\].mode: "move" is not allowed/);
    for (const bad of ['../x', '/abs', 'a/../../x', '.git', 'x/.git/y', '.', 42]) {
      expect(() => normalizeCopyEntries(['ok', bad])).toThrow(/^worktree.copy\[1\]/);
    }
  });
});

describe('the git environment', () => {
  it('drops variables that point git elsewhere, turns optional locks off, and appends config', () => {
    const env = gitEnvironment({}, { HOME: '/h', GIT_DIR: '/x', GIT_INDEX_FILE: '/i', GIT_WORK_TREE: '/w', GIT_AUTHOR_NAME: 'n', PATH: '/bin' });
    expect(env).toMatchObject({ HOME: '/h', PATH: '/bin', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C' });
    for (const name of ['GIT_DIR', 'GIT_INDEX_FILE', 'GIT_WORK_TREE', 'GIT_AUTHOR_NAME']) expect(env[name]).toBeUndefined();
    expect(configEnv({ 'core.splitIndex': 'false' }, {})).toEqual({ GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'core.splitIndex', GIT_CONFIG_VALUE_0: 'false' });
    expect(configEnv({ a: '1' }, { GIT_CONFIG_COUNT: '2' })).toEqual({ GIT_CONFIG_COUNT: '3', GIT_CONFIG_KEY_2: 'a', GIT_CONFIG_VALUE_2: '1' });
  });
});
