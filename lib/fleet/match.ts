import { badInput, quoteInput } from '../errors.js';

/**
 * Which runner may take which job, and why a job waits: pure decisions, no I/O. The claim
 * SQL (`claim_jobs`) applies the same rule as `canTake`; `whyPending` explains to a person
 * why no runner takes a job (shown by `status`, the wait answer and `doctor`).
 */

/** What a job needs from the host that runs it. */
export interface Requirements {
  agent: string;
  /** Only this host may run it (null: any host with the agent and labels). */
  host: string | null;
  /** Every one of these labels must be on the host. */
  labels: string[];
  /** What the runner's code must be able to do (RUNNER_FEATURES of a newer agent-async); sorted. */
  features: string[];
}

/**
 * What a runner of this code can do beyond what every runner could (queue schema version 1):
 * it names these when it registers, and takes only jobs whose features it names, so an older
 * runner never claims a job it cannot run. `isolated-remote`: an isolated job whose snapshot is
 * on a git remote, run from this host's cache of it.
 */
export const ISOLATED_REMOTE = 'isolated-remote';
export const RUNNER_FEATURES: readonly string[] = [ISOLATED_REMOTE];

/** A runner as the queue sees it (one row of `agent_async.runners` plus its load). */
export interface RunnerView {
  host: string;
  epoch: number;
  state: 'active' | 'stopped' | 'lost';
  /** Active and its lease not expired, by the database clock. */
  live: boolean;
  pid: number;
  labels: string[];
  agents: string[];
  capacity: number;
  /** Jobs it holds now (claimed or running). */
  load: number;
  leaseMs: number;
  /** Milliseconds until its lease expires (negative: expired), by the database clock. */
  leaseRemainingMs: number;
  heartbeatAt: string;
  version: string;
  /** What its code can do (its registration's `info.features`; none for a runner older than them). */
  features: string[];
}

export type PendingCode = 'unknown_host' | 'host_down' | 'agent_missing' | 'labels_missing' | 'runner_outdated' | 'no_runner' | 'busy';

export interface PendingReason {
  code: PendingCode;
  message: string;
}

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL = /^[a-z0-9][a-z0-9_.:=-]{0,62}$/;

export function validateHostName(value: unknown, field = 'host'): string {
  if (typeof value === 'string' && HOST_NAME.test(value)) return value;
  throw badInput(field, `${quoteInput(value)} is not a host name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
}

export function validateLabels(value: unknown, field = 'labels'): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badInput(field, 'must be a list of labels, e.g. ["gpu", "big-ram"]');
  return [...new Set(value.map((label, i) => {
    if (typeof label === 'string' && LABEL.test(label)) return label;
    throw badInput(`${field}[${i}]`, `${quoteInput(label)} is not a label: 1-63 lowercase letters, digits, '.', '_', ':', '=' or '-'`);
  }))].sort();
}

/**
 * Where a job may run: the host it names; otherwise any host when it is isolated (its base
 * is a pushed snapshot any host can fetch); otherwise the host it was submitted on, because
 * its cwd is a local path.
 */
export function requirementsFor(job: { agent: string; submittedHost: string; isolated: boolean; fromRemote?: boolean; host?: unknown; labels?: unknown }): Requirements {
  const host = job.host === undefined || job.host === null || job.host === '' ? null : validateHostName(job.host);
  return {
    agent: job.agent,
    host: host ?? (job.isolated ? null : job.submittedHost),
    labels: validateLabels(job.labels),
    features: job.fromRemote ? [ISOLATED_REMOTE] : [],
  };
}

/** Whether a live runner has what a job needs (capacity aside). */
export function canTake(runner: Pick<RunnerView, 'host' | 'agents' | 'labels' | 'live' | 'features'>, needs: Requirements): boolean {
  return runner.live
    && runner.agents.includes(needs.agent)
    && (needs.host === null || needs.host === runner.host)
    && needs.labels.every((label) => runner.labels.includes(label))
    && missingFeatures(runner, needs).length === 0;
}

const list = (items: readonly string[]): string => (items.length > 0 ? items.join(', ') : 'none');

function missingLabels(runner: RunnerView, needs: Requirements): string[] {
  return needs.labels.filter((label) => !runner.labels.includes(label));
}

function missingFeatures(runner: Pick<RunnerView, 'features'>, needs: Requirements): string[] {
  return needs.features.filter((feature) => !runner.features.includes(feature));
}

function outdated(hosts: readonly RunnerView[], needs: Requirements): string {
  return `needs ${needs.features.join(', ')} (an isolated job whose snapshot is on a git remote), which the agent-async of ${list(hosts.map((r) => `${r.host} ${r.version}`))} cannot run; upgrade agent-async there`;
}

function pinnedReason(needs: Requirements & { host: string }, runners: readonly RunnerView[]): PendingReason {
  const runner = runners.find((candidate) => candidate.host === needs.host);
  if (!runner) {
    return { code: 'unknown_host', message: `no runner has ever registered as host "${needs.host}" (known hosts: ${list(runners.map((r) => r.host))}); start \`agent-async runner\` there, or fix the job's host` };
  }
  if (!runner.live) {
    return { code: 'host_down', message: `the runner of host "${needs.host}" is not running (${runner.state}, last heartbeat ${runner.heartbeatAt}); the job starts when it is back` };
  }
  if (!runner.agents.includes(needs.agent)) {
    return { code: 'agent_missing', message: `host "${needs.host}" has no ${needs.agent} CLI (it has: ${list(runner.agents)}); install it there` };
  }
  const missing = missingLabels(runner, needs);
  if (missing.length > 0) {
    return { code: 'labels_missing', message: `host "${needs.host}" lacks the labels ${missing.join(', ')} (it has: ${list(runner.labels)})` };
  }
  if (missingFeatures(runner, needs).length > 0) return { code: 'runner_outdated', message: `the job ${outdated([runner], needs)}` };
  return { code: 'busy', message: `waiting for a free slot on host "${needs.host}" (${runner.load}/${runner.capacity} taken)` };
}

/** Why no runner takes a job that is pending and unclaimed. */
export function whyPending(needs: Requirements, runners: readonly RunnerView[]): PendingReason {
  if (needs.host !== null) return pinnedReason({ ...needs, host: needs.host }, runners);
  const live = runners.filter((runner) => runner.live);
  if (live.length === 0) {
    return { code: 'no_runner', message: `no runner is running (known hosts: ${list(runners.map((r) => r.host))}); start \`agent-async runner\` on a host` };
  }
  const withAgent = live.filter((runner) => runner.agents.includes(needs.agent));
  if (withAgent.length === 0) {
    return { code: 'agent_missing', message: `no running host has the ${needs.agent} CLI (running hosts: ${list(live.map((r) => r.host))}); install it on one` };
  }
  const able = withAgent.filter((runner) => missingLabels(runner, needs).length === 0);
  if (able.length === 0) {
    return { code: 'labels_missing', message: `no running host with ${needs.agent} has the labels ${needs.labels.join(', ')} (hosts with ${needs.agent}: ${list(withAgent.map((r) => `${r.host} [${r.labels.join(', ')}]`))})` };
  }
  const current = able.filter((runner) => missingFeatures(runner, needs).length === 0);
  if (current.length === 0) return { code: 'runner_outdated', message: `the job ${outdated(able, needs)}` };
  const load = current.map((runner) => `${runner.host} ${runner.load}/${runner.capacity}`).join(', ');
  return { code: 'busy', message: `waiting for a free slot (${load})` };
}
