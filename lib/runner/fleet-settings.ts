import os from 'node:os';
import type { Config } from '../config.js';
import { UserError } from '../errors.js';

/**
 * The fleet settings of this host's runner: `host_name` (default the machine's host name),
 * `labels` and `lease_seconds` (default 15). Read here, with the same names and defaults as the
 * config keys, from the config when it has them and else from their AGENT_ASYNC_* variables.
 * Kept apart from lib/fleet so that a runner without `queue_url` never loads the queue.
 */
export interface FleetSettings {
  hostName: string;
  labels: string[];
  leaseMs: number;
}

export const DEFAULT_LEASE_SECONDS = 15;
const MIN_LEASE_SECONDS = 0.2;

type WithFleetKeys = Config & { host_name?: unknown; labels?: unknown; lease_seconds?: unknown };

function labelsFromEnv(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((label) => label.trim()).filter(Boolean);
}

export function fleetSettings(config: Config, env: NodeJS.ProcessEnv = process.env): FleetSettings {
  const keys = config as WithFleetKeys;
  const hostName = keys.host_name ?? (env.AGENT_ASYNC_HOST_NAME || undefined) ?? os.hostname();
  const labels = keys.labels ?? labelsFromEnv(env.AGENT_ASYNC_LABELS) ?? [];
  const leaseSeconds = keys.lease_seconds ?? (env.AGENT_ASYNC_LEASE_SECONDS ? Number(env.AGENT_ASYNC_LEASE_SECONDS) : DEFAULT_LEASE_SECONDS);
  if (typeof hostName !== 'string' || hostName === '') throw new UserError('config_invalid', 'host_name: must be a host name such as "build-1"', 'host_name');
  if (!Array.isArray(labels) || labels.some((label) => typeof label !== 'string')) {
    throw new UserError('config_invalid', 'labels: must be a list of labels, e.g. ["gpu", "big-ram"]', 'labels');
  }
  if (typeof leaseSeconds !== 'number' || !Number.isFinite(leaseSeconds) || leaseSeconds < MIN_LEASE_SECONDS) {
    throw new UserError('config_invalid', `lease_seconds: must be a number of seconds >= ${MIN_LEASE_SECONDS}`, 'lease_seconds');
  }
  return { hostName, labels: labels as string[], leaseMs: Math.round(leaseSeconds * 1000) };
}
