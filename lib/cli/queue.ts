import type { Argv } from 'yargs';
import * as jobs from '../jobs.js';
import { EXIT } from './exit-codes.js';
import { describeCommand, formatAge } from './format.js';
import { action, openContext, print, printJson, type Common } from './output.js';

/**
 * Fleet mode on the command line: `agent-async queue init` (the queue's schema, applied once
 * under its advisory lock) and `queue status` (what `status` shows in fleet mode): every host
 * with its state, agents, labels, load and lease, the running jobs, and why each pending job
 * waits.
 */

function leaseText(ms: number): string {
  return ms >= 0 ? `lease ${(ms / 1000).toFixed(1)} s left` : `lease expired ${(-ms / 1000).toFixed(1)} s ago`;
}

const list = (items: readonly string[]): string => (items.length > 0 ? items.join(',') : '-');

export function renderFleetStatus(status: jobs.FleetStatus): string[] {
  const lines = [`agent-async fleet — queue ${status.queue} (schema ${status.schema_version}) · this host: ${status.host}`, '', 'HOSTS'];
  if (status.hosts.length === 0) lines.push('  (no runner has registered: run `agent-async runner` on each host)');
  for (const host of status.hosts) {
    const state = host.live ? 'active' : host.state === 'active' ? 'silent' : host.state;
    lines.push(`  ${host.host.padEnd(20)} ${state.padEnd(8)} ${`${host.load}/${host.capacity}`.padStart(5)}  agents ${list(host.agents)}  labels ${list(host.labels)}  pid ${host.pid}  ${leaseText(host.lease_expires_in_ms)}`);
  }
  lines.push('', 'RUNNING');
  if (status.running.length === 0) lines.push('  (none)');
  for (const state of status.running) lines.push(`  ${state.id}  ${state.request.agent.padEnd(7)} on ${state.supervisor?.host ?? '?'}  ${describeCommand(state)}`);
  lines.push('', 'PENDING');
  if (status.pending.length === 0) lines.push('  (none)');
  for (const job of status.pending) {
    const why = job.runner_host ? `claimed by ${job.runner_host}, starting` : job.reason?.message ?? 'waiting for a runner';
    lines.push(`  ${job.state.id}  ${job.state.request.agent.padEnd(7)} queued ${formatAge(job.state.created_at)}  ${describeCommand(job.state)}`, `      ${why}`);
  }
  return lines;
}

/** `status` in fleet mode: one frame of the whole fleet (--json: the same as JSON). */
export async function printFleetStatus(ctx: jobs.JobsContext, json: boolean): Promise<number> {
  const status = await jobs.fleetStatus(ctx);
  if (json) printJson(status);
  else print(renderFleetStatus(status).join('\n'));
  return EXIT.ok;
}

export function queueCommands(y: Argv): Argv {
  return y.command('queue', 'fleet mode: the PostgreSQL queue named by queue_url (docs/FLEET.md)', (cmd) =>
    cmd
      .command<Common>(
        'init',
        "create or upgrade the queue's schema (once, under an advisory lock: safe from several hosts at once) and print its version",
        (sub) => sub,
        action(async (args) => {
          const report = await jobs.initQueue(openContext(args));
          if (args.json) printJson(report);
          else {
            const what = report.applied.length > 0 ? `applied migration${report.applied.length > 1 ? 's' : ''} ${report.applied.join(', ')}` : 'already up to date';
            print(`queue ${report.queue}: schema version ${report.version} (${what})`);
          }
          return EXIT.ok;
        }),
      )
      .command<Common>(
        'status',
        'every host (state, agents, labels, load, lease) and why each pending job waits',
        (sub) => sub,
        action(async (args) => {
          const ctx = openContext(args);
          if (!jobs.isFleet(ctx)) throw jobs.fleetOff('queue status');
          return printFleetStatus(ctx, Boolean(args.json));
        }),
      )
      .demandCommand(1, 'say which: queue init or queue status'));
}
