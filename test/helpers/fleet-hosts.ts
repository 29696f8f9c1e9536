import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FleetQueue} from '../../lib/fleet/index.js';
import { getJob, submitJob, type FleetJob } from '../../lib/fleet/index.js';
import { newJobId } from '../../lib/spool/ids.js';
import { isTerminal, newJobState } from '../../lib/spool/state.js';
import { jobRequest } from './job-request.mjs';
import type { PgCluster } from './pg-cluster.js';
import { CLI, FAST_CONFIG, ROOT, killPid, killSpoolProcesses } from './spool.js';

/**
 * Runner hosts for the fleet tests: each an `agent-async runner` process (from dist/) with its
 * own HOME and spool, its host name, and the queue URL through the environment (the password
 * from the cluster's pgpass file). Jobs are exec jobs of test/helpers/fleet-worker.mjs, which
 * appends each start to a per-job ledger file. They all run in one cwd (the temp folder), so
 * the hosts do not keep jobs of one cwd apart (exclusive_cwd false).
 */
export const WORKER = path.join(ROOT, 'test', 'helpers', 'fleet-worker.mjs');

export interface HostOptions {
  concurrency?: number;
  leaseSeconds?: number;
  labels?: string[];
  /** Wraps the command, e.g. ['ip', 'netns', 'exec', 'ns1'] (argv, never a shell). */
  prefix?: string[];
  /** The queue URL this host uses (default the cluster's on 127.0.0.1), and its pgpass file. */
  url?: string;
  pgpassFile?: string;
}

export interface Host {
  name: string;
  home: string;
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
  /** Starts a new runner process on the same spool (after a kill). */
  restart: () => Host;
}

export class Hosts {
  readonly base: string;
  readonly ledgerDir: string;
  readonly all: Host[] = [];

  constructor(private readonly cluster: PgCluster, readonly database: string) {
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-hosts-'));
    this.ledgerDir = path.join(this.base, 'ledger');
    fs.mkdirSync(this.ledgerDir);
  }

  start(name: string, options: HostOptions = {}): Host {
    const home = path.join(this.base, name, 'spool');
    if (!fs.existsSync(home)) {
      fs.mkdirSync(home, { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ ...FAST_CONFIG, concurrency: options.concurrency ?? 2, exclusive_cwd: false }));
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('AGENT_ASYNC_')) delete env[key];
    Object.assign(env, {
      HOME: path.join(this.base, name),
      AGENT_ASYNC_HOME: home,
      AGENT_ASYNC_QUEUE_URL: options.url ?? this.cluster.url(this.database),
      PGPASSFILE: options.pgpassFile ?? this.cluster.pgpassFile,
      AGENT_ASYNC_HOST_NAME: name,
      AGENT_ASYNC_LEASE_SECONDS: String(options.leaseSeconds ?? 2),
      AGENT_ASYNC_LABELS: (options.labels ?? []).join(','),
    });
    const argv = [...(options.prefix ?? []), process.execPath, CLI, 'runner'];
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const host: Host = {
      name,
      home,
      child,
      log: () => text,
      exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
      restart: () => this.start(name, options),
    };
    this.all.push(host);
    return host;
  }

  /**
   * Starts the host's runner again after a kill, as a service manager would (systemd's
   * Restart=). A runner that finds a live leader exits at once: after a kill of the runner
   * alone, a supervisor of the host has started one already (supervisor-main.ts); the host is
   * then up. One that finds the dead runner's lock too fresh is started again a moment later.
   */
  async restartUntilLeading(host: Host): Promise<Host> {
    for (;;) {
      const next = host.restart();
      const outcome = await Promise.race([
        next.exited.then(() => 'exited' as const),
        until(() => (/ leading \(epoch/.test(next.log()) ? ('leading' as const) : undefined)),
      ]);
      if (outcome === 'leading' || /another runner leads this spool/.test(next.log())) return next;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /** What the host's runners said, the test's and those its supervisors restarted (runner.log). */
  logOf(host: Host): string {
    const file = path.join(host.home, 'runner.log');
    return this.all.filter((other) => other.name === host.name).map((other) => other.log()).join('') + (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  }

  /** The host dies: every process of its spool (runner, supervisors, workers) gets SIGKILL at once. */
  async killHost(host: Host): Promise<void> {
    const marker = Buffer.from(`AGENT_ASYNC_HOME=${host.home}\0`);
    const pids = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
      try {
        return pid !== process.pid && fs.readFileSync(`/proc/${pid}/environ`).includes(marker);
      } catch {
        return false;
      }
    });
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await until(() => (pids.every((pid) => !fs.existsSync(`/proc/${pid}`) || /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) ? true : undefined));
  }

  /** Starts of a job as its worker recorded them: `start <id> <host> <pid>` lines. */
  starts(id: string): string[][] {
    const file = path.join(this.ledgerDir, id);
    if (!fs.existsSync(file)) return [];
    return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => line.split(' '));
  }

  /**
   * Every process a test started gets SIGKILL: the runners, and every process of each spool
   * here (a fleet runner never idles out, and a supervisor whose runner died starts one itself),
   * and the workers recorded in the ledgers.
   */
  cleanup(): void {
    for (const host of this.all) if (host.child.exitCode === null && host.child.signalCode === null) host.child.kill('SIGKILL');
    for (const name of fs.readdirSync(this.base)) {
      const home = path.join(this.base, name, 'spool');
      if (fs.existsSync(home)) killSpoolProcesses(home);
    }
    for (const name of fs.readdirSync(this.ledgerDir)) {
      // a worker's line, not a half-written one (Number('') is 0: kill(0) would end this test's own group)
      for (const [, , , pid] of this.starts(name)) if (/^\d+$/.test(pid ?? '')) killPid(Number(pid));
    }
  }
}

export interface FleetJobSpec {
  mode: 'quick' | 'sleep' | 'hold';
  args?: string[];
  host?: string | null;
  labels?: string[];
}

/** Submits an exec job of the fleet worker, as lib/fleet's submitJob does for any face. */
export async function submitWorkerJob(queue: FleetQueue, hosts: Hosts, spec: FleetJobSpec): Promise<string> {
  const argv = [process.execPath, WORKER, hosts.ledgerDir, spec.mode, ...(spec.args ?? [])];
  const state = newJobState(newJobId(), jobRequest('exec', argv, { cwd: os.tmpdir() }));
  await submitJob(queue.db, { state, needs: { agent: 'exec', host: spec.host ?? null, labels: spec.labels ?? [], features: [] }, submittedHost: 'submitter' });
  return state.id;
}

export async function until<T>(read: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function terminal(queue: FleetQueue, id: string): Promise<FleetJob> {
  return until(async () => {
    const job = await getJob(queue.db, id);
    return job && isTerminal(job.state.status) ? job : undefined;
  });
}

export async function registered(queue: FleetQueue, names: string[]): Promise<void> {
  await until(async () => {
    const rows = await queue.db.query<{ host: string }>("SELECT host FROM agent_async.runners WHERE state = 'active' AND lease_expires_at > clock_timestamp()");
    const live = new Set(rows.rows.map((row) => row.host));
    return names.every((name) => live.has(name)) ? true : undefined;
  });
}
