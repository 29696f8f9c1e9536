import os from 'node:os';
import type { Config } from '../config.js';

/**
 * The fleet settings of this host's runner, from the config keys `host_name` (null: the
 * machine's host name), `labels` and `lease_seconds` (each also AGENT_ASYNC_* in the
 * environment; lib/config.ts validates them). Kept apart from lib/fleet so that a runner
 * without `queue_url` never loads the queue.
 */
export interface FleetSettings {
  hostName: string;
  labels: string[];
  leaseMs: number;
}

export function fleetSettings(config: Config): FleetSettings {
  return { hostName: config.host_name ?? os.hostname(), labels: [...config.labels], leaseMs: Math.round(config.lease_seconds * 1000) };
}
