import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';
import { which } from '../which.js';

/**
 * The daily auto-update: a crontab line on Linux, a LaunchAgent on macOS. Both run
 * `agent-async update` at 09:00 and append what it says to `<spool>/update.log`.
 */

const CRON_MARK = '# agent-async auto-update';
const LAUNCH_LABEL = 'com.agent-async.update';

export interface UpdateCommand {
  node: string;
  launcher: string;
  log: string;
}

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function crontabBinary(env: NodeJS.ProcessEnv): string {
  const found = findCrontab(env);
  if (!found) throw new UserError('conflict', 'crontab: not found; install cron (e.g. `apt-get install cron`) to schedule daily updates', 'crontab');
  return found;
}

/** The user's crontab; a failure other than "no crontab" throws, so it is never taken for empty and overwritten. */
function readCrontab(crontab: string, env: NodeJS.ProcessEnv): string {
  const result = spawnSync(crontab, ['-l'], { encoding: 'utf8', env });
  if (result.status === 0) return result.stdout;
  if (/no crontab/i.test(result.stderr ?? '')) return '';
  throw new UserError('conflict', `crontab: \`crontab -l\` failed (${(result.stderr ?? '').trim() || `exit ${result.status ?? result.signal}`}); the crontab was left as it was`, 'crontab');
}

/** The crontab's lines without ours, blank lines and comments kept, trailing blank lines dropped. */
function linesWithoutOurs(crontab: string): string[] {
  const kept = crontab.split('\n').filter((line) => !line.includes(CRON_MARK));
  while (kept.length > 0 && kept.at(-1) === '') kept.pop();
  return kept;
}

function findCrontab(env: NodeJS.ProcessEnv): string | null {
  return which('crontab', env.PATH ?? '');
}

function writeCrontab(crontab: string, text: string, env: NodeJS.ProcessEnv): void {
  const result = spawnSync(crontab, text.trim() === '' ? ['-r'] : ['-'], { input: text, encoding: 'utf8', env });
  if (result.status !== 0 && text.trim() !== '') throw new Error(`crontab - failed: ${result.stderr}`);
}

function launchAgentFile(env: NodeJS.ProcessEnv): string {
  return path.join(env.HOME ?? os.homedir(), 'Library', 'LaunchAgents', `${LAUNCH_LABEL}.plist`);
}

function plist(command: UpdateCommand): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>${LAUNCH_LABEL}</string>
  <key>ProgramArguments</key>
  <array><string>${esc(command.node)}</string><string>${esc(command.launcher)}</string><string>update</string></array>
  <key>StartCalendarInterval</key><dict><key>Hour</key><integer>9</integer><key>Minute</key><integer>0</integer></dict>
  <key>StandardOutPath</key><string>${esc(command.log)}</string>
  <key>StandardErrorPath</key><string>${esc(command.log)}</string>
</dict>
</plist>
`;
}

export function autoUpdateEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform === 'darwin') return fs.existsSync(launchAgentFile(env));
  const crontab = findCrontab(env);
  return crontab !== null && readCrontab(crontab, env).includes(CRON_MARK);
}

export function enableAutoUpdate(command: UpdateCommand, env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'darwin') {
    const file = launchAgentFile(env);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, plist(command));
    spawnSync('launchctl', ['unload', file], { env });
    spawnSync('launchctl', ['load', file], { env });
    return `daily update at 09:00 scheduled with launchd (${file})`;
  }
  const crontab = crontabBinary(env);
  const kept = linesWithoutOurs(readCrontab(crontab, env));
  const line = `0 9 * * * ${shellQuote(command.node)} ${shellQuote(command.launcher)} update >> ${shellQuote(command.log)} 2>&1 ${CRON_MARK}`;
  writeCrontab(crontab, `${[...kept, line].join('\n')}\n`, env);
  return 'daily update at 09:00 scheduled with cron (crontab -l shows it)';
}

export function disableAutoUpdate(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'darwin') {
    const file = launchAgentFile(env);
    if (!fs.existsSync(file)) return 'no auto-update was scheduled';
    spawnSync('launchctl', ['unload', file], { env });
    fs.rmSync(file);
    return 'daily update removed from launchd';
  }
  const crontab = findCrontab(env);
  if (!crontab) return 'no auto-update was scheduled';
  const current = readCrontab(crontab, env);
  if (!current.includes(CRON_MARK)) return 'no auto-update was scheduled';
  const kept = linesWithoutOurs(current);
  writeCrontab(crontab, kept.length === 0 ? '' : `${kept.join('\n')}\n`, env);
  return 'daily update removed from cron';
}
