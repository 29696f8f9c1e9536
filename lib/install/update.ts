import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { PACKAGE_ROOT, packageVersion } from '../version.js';
import { readInstallManifest } from './uninstall.js';

/**
 * `check-update` and `update`. A git install moves to the newest release tag (vX.Y.Z, never a
 * branch head), only forward, and only after the new version was built beside the old one,
 * so a failed build leaves the working install as it was. An npm install updates the npm way.
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
  current: string;
  latest: string | null;
  update_available: boolean;
  root: string;
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

export function checkUpdate(root = PACKAGE_ROOT): UpdateCheck {
  const kind = installKind(root);
  const current = packageVersion();
  if (kind === 'git') {
    git(root, ['fetch', '--quiet', '--tags', '--force', 'origin']);
    const latest = newestTag(root);
    const available = latest !== null && compare(latest.parts, currentGitVersion(root)) > 0;
    return { kind, current, latest: latest?.tag ?? null, update_available: available, root };
  }
  if (kind === 'npm') {
    const latest = run('npm', ['view', 'agent-async-mcp', 'version']).trim();
    const parsed = parseRelease(latest);
    const mine = parseRelease(current);
    return { kind, current, latest, update_available: Boolean(parsed && mine && compare(parsed.parts, mine.parts) > 0), root };
  }
  throw new UserError('conflict', `update: ${root} is neither a git checkout nor an npm install; update it the way you installed it`, 'update');
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

/** Moves a git install forward to the newest release tag, building it aside first. */
function updateGit(check: UpdateCheck, log: (line: string) => void): UpdateResult {
  const { root } = check;
  const target = check.latest!;
  if (spawnSync('git', ['-C', root, 'merge-base', '--is-ancestor', 'HEAD', target]).status !== 0) {
    throw new UserError('conflict', `update: ${target} is not ahead of the installed commit (local changes or a rewritten tag); not moving`, 'update');
  }
  // inside the install: the same filesystem, so the built parts move in by rename
  const staging = fs.mkdtempSync(path.join(root, '.agent-async-update-'));
  try {
    log(`building ${target} in ${staging}`);
    run('git', ['clone', '--quiet', '--no-hardlinks', root, staging]);
    git(staging, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', target]);
    run('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: staging });
    // the build worked: switch the install over (source first, then the built parts)
    git(root, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', target]);
    swap(root, staging, 'node_modules');
    swap(root, staging, 'dist');
  } catch (error) {
    log(`the new version did not build; the installed ${check.current} stays as it was`);
    throw error;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return { from: check.current, to: target, updated: true, message: `updated ${check.current} → ${target}` };
}

export function update(root = PACKAGE_ROOT, log: (line: string) => void = () => undefined): UpdateResult {
  const check = checkUpdate(root);
  if (!check.update_available) {
    return { from: check.current, to: check.latest, updated: false, message: `up to date (${check.current}${check.latest ? `, newest release ${check.latest}` : ''})` };
  }
  if (check.kind === 'git') return updateGit(check, log);
  const manifest = readInstallManifest(root);
  // an install.sh install lives in its own prefix; a plain `npm install -g` one is global
  const where = manifest ? ['--prefix', manifest.prefix] : ['--global'];
  run('npm', ['install', ...where, '--no-audit', '--no-fund', `agent-async-mcp@${check.latest}`], { stdio: 'inherit' });
  return { from: check.current, to: check.latest, updated: true, message: `updated ${check.current} → ${check.latest} with npm` };
}
