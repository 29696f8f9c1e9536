import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { CLIENT_NAMES, clientStatus, disallowTools, removeClient } from '../clients/clients.js';
import { loadRecords } from '../clients/records.js';
import { readJsonFile } from '../spool/fsx.js';
import { walkIndex } from '../spool/index.js';
import { spoolPaths } from '../spool/layout.js';
import { stopSpool } from '../runner/shutdown.js';
import { PACKAGE_ROOT } from '../version.js';
import { disableAutoUpdate } from './schedule.js';

/**
 * `agent-async uninstall` (also run by `install.sh uninstall`): takes back everything the
 * install and the commands added — client registrations and tool permissions, the
 * auto-update schedule, the `agent-async` link and the installed files — and the spool too
 * when it holds no job (with jobs, only with --purge).
 */

export const INSTALL_MANIFEST = '.install.json';

const manifestSchema = z.object({
  schema_version: z.literal(1),
  prefix: z.string(),
  bin_link: z.string(),
  created_dirs: z.array(z.string()).describe('folders the install created (parents of the prefix and of the link), oldest first'),
  source: z.string(),
});
export type InstallManifest = z.infer<typeof manifestSchema>;

export function readInstallManifest(root = PACKAGE_ROOT): InstallManifest | null {
  const read = readJsonFile(path.join(root, INSTALL_MANIFEST));
  if (read.kind !== 'ok') return null;
  const parsed = manifestSchema.safeParse(read.value);
  return parsed.success ? parsed.data : null;
}

function spoolHasJobs(home: string): boolean {
  for (const id of walkIndex(spoolPaths(home), 'newest')) if (id) return true;
  try {
    return fs.readdirSync(path.join(home, 'jobs')).length > 0;
  } catch {
    return false;
  }
}

export interface UninstallReport {
  steps: string[];
  kept: string[];
}

/**
 * Stops the spool's runner and supervisors before their install goes: running jobs are
 * cancelled (workers stopped with their process trees), pending ones stay queued and run when
 * agent-async is installed again (unless the spool is removed too).
 */
async function stopQueue(home: string, report: UninstallReport): Promise<number> {
  const stopped = await stopSpool(spoolPaths(home), `uninstall (pid ${process.pid})`);
  if (stopped.runnerPid !== null) report.steps.push(`stopped the runner (pid ${stopped.runnerPid}) and its supervisors`);
  if (stopped.cancelled.length > 0) report.steps.push(`cancelled ${stopped.cancelled.length} running job(s): ${stopped.cancelled.join(', ')}`);
  if (stopped.stillRunning.length > 0) report.kept.push(`job(s) still stopping: ${stopped.stillRunning.join(', ')}`);
  return stopped.pending.length;
}

export async function uninstall(options: { home: string; purge: boolean; env?: NodeJS.ProcessEnv; root?: string }): Promise<UninstallReport> {
  const env = options.env ?? process.env;
  const root = options.root ?? PACKAGE_ROOT;
  const report: UninstallReport = { steps: [], kept: [] };
  let pending = 0;
  try {
    pending = await stopQueue(options.home, report);
  } catch (error) {
    report.kept.push(`the queue could not be stopped: ${(error as Error).message}`);
  }
  // one step that fails (a client config broken by hand) is reported; the others still run
  const step = (what: string, action: () => string | null): void => {
    try {
      const message = action();
      if (message) report.steps.push(message);
    } catch (error) {
      report.kept.push(`${what}: ${(error as Error).message}`);
    }
  };
  const recorded = Object.keys(loadRecords(options.home).registrations);
  for (const client of CLIENT_NAMES) {
    step(client, () => (recorded.includes(client) || clientStatus(client, env).registered ? removeClient(client, options.home, env).message : null));
  }
  step('tool permissions', () => disallowTools(options.home)?.message ?? null);
  step('auto-update', () => disableAutoUpdate(env));

  if (fs.existsSync(options.home)) {
    if (options.purge || !spoolHasJobs(options.home)) {
      fs.rmSync(options.home, { recursive: true, force: true });
      report.steps.push(`removed the spool ${options.home}`);
    } else {
      report.kept.push(`${options.home} (it holds jobs; run with --purge to remove it too)`);
      if (pending > 0) report.kept.push(`${pending} pending job(s) in it stay queued: they run when agent-async is installed again`);
    }
  }

  const manifest = readInstallManifest(root);
  if (manifest) {
    try {
      if (fs.lstatSync(manifest.bin_link).isSymbolicLink()) fs.rmSync(manifest.bin_link);
      report.steps.push(`removed the link ${manifest.bin_link}`);
    } catch {
      // already gone
    }
    if (manifest.created_dirs.includes(manifest.prefix) || !manifest.source.startsWith('npm:')) {
      fs.rmSync(manifest.prefix, { recursive: true, force: true });
      report.steps.push(`removed ${manifest.prefix}`);
    } else {
      // an npm install into a folder that was there before: take out only our package
      fs.rmSync(root, { recursive: true, force: true });
      report.steps.push(`removed ${root}`);
      report.kept.push(`${manifest.prefix} (it existed before the install)`);
    }
    for (const dir of [...manifest.created_dirs].reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // not empty: something else lives there now
      }
    }
  } else {
    report.kept.push(`${root} (not installed by install.sh: remove it the way you installed it, e.g. npm uninstall -g agent-async-mcp)`);
  }
  return report;
}
