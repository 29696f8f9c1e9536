import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { PACKAGE_ROOT, packageVersion } from '../version.js';
import { readInstallManifest } from './uninstall.js';

/**
 * `check-update` and `update`. A git install follows what it was installed at: checked out at
 * a release tag (detached), it moves to the newest release tag (vX.Y.Z); on a branch (an
 * install from a checkout, or `--ref=<branch>`), to the newest commit of that branch on the
 * remote it came from. Either way only forward (never over local commits or a rewritten
 * history), and only after the new version was built beside the old one, so a failed build
 * leaves the working install as it was. An npm install updates the npm way.
 */

export type InstallKind = 'git' | 'npm' | 'unknown';

export function installKind(root = PACKAGE_ROOT): InstallKind {
  if (fs.existsSync(path.join(root, '.git'))) return 'git';
  if (root.split(path.sep).includes('node_modules')) return 'npm';
  return 'unknown';
}

interface Version {
  tag: string;
  parts: [number, number, number];
}

function parseRelease(tag: string): Version | null {
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(tag.trim());
  return match ? { tag: tag.trim(), parts: [Number(match[1]), Number(match[2]), Number(match[3])] } : null;
}

function compare(a: Version['parts'], b: Version['parts']): number {
  for (let i = 0; i < 3; i += 1) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Our node's folder first on PATH: under cron the PATH is /usr/bin:/bin, without an nvm node's npm. */
function toolEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter) };
}

function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 15 * 60_000, env: toolEnv(), ...options });
  if (result.status !== 0) {
    const output = `${String(result.stdout ?? '')}${String(result.stderr ?? '')}`.trim().split('\n').slice(-15).join('\n');
    throw new UserError('conflict', `\`${command} ${args.join(' ')}\` failed (exit ${result.status ?? result.signal}):\n${output}`, 'update');
  }
  return String(result.stdout ?? '');
}

const git = (root: string, args: string[]): string => run('git', ['-C', root, ...args]);

export interface UpdateCheck {
  kind: InstallKind;
  /** git installs: 'tags' (at a release, detached) or 'branch' (on a branch). */
  track: 'tags' | 'branch' | null;
  branch: string | null;
  current: string;
  latest: string | null;
  update_available: boolean;
  /** branch: how many commits the install is behind. */
  commits_behind: number | null;
  /** Why there is nothing to move to, when that is not simply "up to date". */
  note: string | null;
  root: string;
  /** The commit or tag to check out. */
  target: string | null;
}

function newestTag(root: string): Version | null {
  const releases = git(root, ['tag', '--list'])
    .split('\n')
    .map(parseRelease)
    .filter((v): v is Version => v !== null)
    .sort((a, b) => compare(b.parts, a.parts));
  return releases[0] ?? null;
}

function currentGitVersion(root: string): Version['parts'] {
  const described = spawnSync('git', ['-C', root, 'describe', '--tags', '--exact-match', 'HEAD'], { encoding: 'utf8' });
  const tagged = described.status === 0 ? parseRelease(described.stdout) : null;
  return (tagged ?? parseRelease(packageVersion()) ?? { parts: [0, 0, 0] }).parts;
}

/** The branch a git install is on, and where its commits come from; null when it is detached (at a release). */
function trackedBranch(root: string): { branch: string; remote: string; merge: string } | null {
  const head = spawnSync('git', ['-C', root, 'symbolic-ref', '--quiet', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return null;
  const branch = head.stdout.trim();
  const config = (key: string): string | null => {
    const read = spawnSync('git', ['-C', root, 'config', '--get', key], { encoding: 'utf8' });
    return read.status === 0 ? read.stdout.trim() : null;
  };
  return { branch, remote: config(`branch.${branch}.remote`) ?? 'origin', merge: config(`branch.${branch}.merge`) ?? `refs/heads/${branch}` };
}

function checkBranch(root: string, current: string, tracked: { branch: string; remote: string; merge: string }): UpdateCheck {
  git(root, ['fetch', '--quiet', '--no-tags', tracked.remote, tracked.merge]);
  const head = git(root, ['rev-parse', 'HEAD']).trim();
  const target = git(root, ['rev-parse', 'FETCH_HEAD']).trim();
  const short = (sha: string): string => `${tracked.branch}@${sha.slice(0, 7)}`;
  const base = { kind: 'git' as const, track: 'branch' as const, branch: tracked.branch, current: `${current} (${short(head)})`, latest: short(target), root, target };
  if (head === target) return { ...base, update_available: false, commits_behind: 0, note: null };
  if (spawnSync('git', ['-C', root, 'merge-base', '--is-ancestor', head, target]).status !== 0) {
    const note = `the installed commit is not behind ${tracked.branch} of ${tracked.remote} (local commits, or a rewritten branch); not moving`;
    return { ...base, update_available: false, commits_behind: null, note };
  }
  const behind = Number(git(root, ['rev-list', '--count', `${head}..${target}`]).trim());
  return { ...base, update_available: true, commits_behind: behind, note: null };
}

export function checkUpdate(root = PACKAGE_ROOT): UpdateCheck {
  const kind = installKind(root);
  const current = packageVersion();
  const none = { track: null, branch: null, commits_behind: null, note: null, root, target: null };
  if (kind === 'git') {
    const tracked = trackedBranch(root);
    if (tracked) return checkBranch(root, current, tracked);
    git(root, ['fetch', '--quiet', '--tags', '--force', 'origin']);
    const latest = newestTag(root);
    const available = latest !== null && compare(latest.parts, currentGitVersion(root)) > 0;
    const note = latest === null ? 'the source has no release tag (vX.Y.Z) and this install is on no branch; reinstall with --ref=<branch> to follow a branch' : null;
    return { ...none, kind, track: 'tags', current, latest: latest?.tag ?? null, update_available: available, note, target: latest?.tag ?? null };
  }
  if (kind === 'npm') {
    const latest = run('npm', ['view', 'agent-async-mcp', 'version']).trim();
    const parsed = parseRelease(latest);
    const mine = parseRelease(current);
    return { ...none, kind, current, latest, update_available: Boolean(parsed && mine && compare(parsed.parts, mine.parts) > 0), target: latest };
  }
  throw new UserError('conflict', `update: ${root} is neither a git checkout nor an npm install; update it the way you installed it`, 'update');
}

/** What `check-update` says. */
export function describeCheck(check: UpdateCheck): string {
  if (check.update_available) {
    const commits = check.commits_behind === null ? '' : `, ${check.commits_behind} new commit${check.commits_behind === 1 ? '' : 's'}`;
    return `update available: ${check.current} → ${check.latest}${commits} (run agent-async update)`;
  }
  const following = check.track === 'branch' ? `, following ${check.branch}` : check.track === 'tags' ? ', following release tags' : '';
  return `up to date (${check.current}${following})${check.note ? `: ${check.note}` : ''}`;
}

export interface UpdateResult {
  from: string;
  to: string | null;
  updated: boolean;
  message: string;
}

function swap(root: string, staging: string, name: string): void {
  const current = path.join(root, name);
  const old = `${current}.old-${process.pid}`;
  const hadCurrent = fs.existsSync(current);
  if (hadCurrent) fs.renameSync(current, old);
  try {
    fs.renameSync(path.join(staging, name), current);
  } catch (error) {
    if (hadCurrent) fs.renameSync(old, current);
    throw error;
  }
  fs.rmSync(old, { recursive: true, force: true });
}

/** Moves a git install forward (to the newest release tag, or its branch's newest commit), building it aside first. */
function updateGit(check: UpdateCheck, log: (line: string) => void): UpdateResult {
  const { root } = check;
  const target = check.target!;
  if (spawnSync('git', ['-C', root, 'merge-base', '--is-ancestor', 'HEAD', target]).status !== 0) {
    throw new UserError('conflict', `update: ${check.latest} is not ahead of the installed commit (local changes or a rewritten tag); not moving`, 'update');
  }
  // inside the install: the same filesystem, so the built parts move in by rename
  const staging = fs.mkdtempSync(path.join(root, '.agent-async-update-'));
  try {
    log(`building ${check.latest} in ${staging}`);
    run('git', ['clone', '--quiet', '--no-hardlinks', '--no-checkout', root, staging]);
    git(staging, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', target]);
    run('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: staging });
    // the build worked: switch the install over (source first, then the built parts)
    if (check.track === 'branch') git(root, ['merge', '--quiet', '--ff-only', target]);
    else git(root, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', target]);
    swap(root, staging, 'node_modules');
    swap(root, staging, 'dist');
    // install.sh's record of what is built, so running it again does not build once more
    fs.writeFileSync(path.join(root, '.install-built'), `${git(root, ['rev-parse', 'HEAD']).trim()}\n`);
  } catch (error) {
    log(`the new version did not build; the installed ${check.current} stays as it was`);
    throw error;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  const commits = check.commits_behind === null ? '' : ` (${check.commits_behind} new commit${check.commits_behind === 1 ? '' : 's'})`;
  return { from: check.current, to: check.latest, updated: true, message: `updated ${check.current} → ${check.latest}${commits}` };
}

export function update(root = PACKAGE_ROOT, log: (line: string) => void = () => undefined): UpdateResult {
  const check = checkUpdate(root);
  if (check.note && check.track === 'branch') throw new UserError('conflict', `update: ${check.note}`, 'update');
  if (!check.update_available) {
    const newest = check.track === 'branch' ? '' : check.latest ? `, newest release ${check.latest}` : '';
    return { from: check.current, to: check.latest, updated: false, message: `up to date (${check.current}${newest})${check.note ? `: ${check.note}` : ''}` };
  }
  if (check.kind === 'git') return updateGit(check, log);
  const manifest = readInstallManifest(root);
  // an install.sh install lives in its own prefix; a plain `npm install -g` one is global
  const where = manifest ? ['--prefix', manifest.prefix] : ['--global'];
  run('npm', ['install', ...where, '--no-audit', '--no-fund', `agent-async-mcp@${check.latest}`], { stdio: 'inherit' });
  return { from: check.current, to: check.latest, updated: true, message: `updated ${check.current} → ${check.latest} with npm` };
}
