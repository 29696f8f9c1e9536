import { isUserError } from '../errors.js';
import * as jobs from '../jobs.js';
import type { Check } from './doctor.js';

/**
 * `doctor` in fleet mode: the queue's connection, its schema version, each host's runner, and
 * why each pending job waits. Reads only: an old schema is reported, never migrated here.
 */

function failed(what: string, error: unknown, fix: string): Check {
  if (!isUserError(error)) throw error;
  return { level: 'fail', what, detail: error.message, fix };
}

function hostCheck(host: jobs.FleetStatus['hosts'][number], self: string): Check {
  const what = `host ${host.host}${host.host === self ? ' (this)' : ''}`;
  const detail = `${host.state}, ${host.load}/${host.capacity} jobs, agents ${host.agents.join(', ') || 'none'}, labels ${host.labels.join(', ') || 'none'}, pid ${host.pid}`;
  if (host.live) return { level: 'ok', what, detail: `${detail}, lease ${(host.lease_expires_in_ms / 1000).toFixed(1)} s left` };
  return {
    level: 'warn', what, detail: `${detail}; no live runner (last heartbeat ${host.heartbeat_at})`,
    fix: `start \`agent-async runner\` on ${host.host} (its jobs wait for it)`,
  };
}

export async function fleetChecks(ctx: jobs.JobsContext): Promise<Check[]> {
  let probe: Awaited<ReturnType<typeof jobs.probeQueue>>;
  try {
    probe = await jobs.probeQueue(ctx);
  } catch (error) {
    return [failed('queue', error, 'fix queue_url (config.json or AGENT_ASYNC_QUEUE_URL), the password in ~/.pgpass or PGPASSFILE, or the server')];
  }
  const checks: Check[] = [{ level: 'ok', what: 'queue', detail: `${probe.queue} answers (${probe.latencyMs} ms)` }];
  if (probe.version > probe.supported) {
    checks.push({ level: 'fail', what: 'queue schema', detail: `the queue's schema is version ${probe.version}, newer than this agent-async knows (${probe.supported})`, fix: 'upgrade agent-async on this host' });
    return checks;
  }
  if (probe.version < probe.supported) {
    const found = probe.version === 0 ? 'not initialised' : `version ${probe.version}, older than this agent-async's ${probe.supported}`;
    checks.push({ level: 'warn', what: 'queue schema', detail: found, fix: 'agent-async queue init (the first runner or job does it too)' });
    return checks;
  }
  checks.push({ level: 'ok', what: 'queue schema', detail: `version ${probe.version}` });
  let status: jobs.FleetStatus;
  try {
    status = await jobs.fleetStatus(ctx);
  } catch (error) {
    return [...checks, failed('queue', error, 'check the server and try again')];
  }
  checks.push(...status.hosts.map((host) => hostCheck(host, status.host)));
  if (!status.hosts.some((host) => host.host === status.host && host.live)) {
    checks.push({ level: 'warn', what: `host ${status.host} (this)`, detail: 'no runner serves this host: jobs started here wait', fix: 'run `agent-async runner` here (the README has a systemd unit)' });
  }
  for (const job of status.pending) {
    if (!job.reason || job.reason.code === 'busy') continue;
    checks.push({ level: 'warn', what: `job ${job.state.id}`, detail: `pending: ${job.reason.message}`, fix: 'start a runner that can take it, or cancel it' });
  }
  return checks;
}
