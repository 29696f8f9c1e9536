// Helpers for the benchmark suite: temp spools, an MCP client over stdio, statistics, and
// bulk-made finished jobs.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'bin', 'agent-async.js');
const spools = [];

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function makeSpool(config = {}) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-bench-'));
  const home = path.join(base, 'spool');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ runner_idle_seconds: 30, ...config }));
  const env = { ...process.env, AGENT_ASYNC_HOME: home };
  const spool = { base, home, env, work: base };
  spools.push(spool);
  return spool;
}

function spoolPids(spool) {
  const pids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (!fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(`AGENT_ASYNC_HOME=${spool.home}`)) continue;
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (!/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

/** SIGKILLs every process of the spool and waits until they are gone (a dying one may finish a write). */
export function killSpool(spool) {
  const deadline = Date.now() + 5000;
  for (let pids = spoolPids(spool); pids.length > 0 && Date.now() < deadline; pids = spoolPids(spool)) {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync('sleep', ['0.02']);
  }
}

/** Removes a benchmark folder, retrying while a process that was just killed still finishes a write. */
export function removeTree(dir) {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

const scratchDirs = [];

/**
 * A temp folder removed only by `cleanup`, at the end: on ext4 without a journal, removing
 * thousands of files slows every file creation for minutes after, so no scenario removes
 * files while another is measured.
 */
export function scratchDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

export function cleanup() {
  for (const spool of spools.splice(0)) {
    killSpool(spool);
    removeTree(spool.base);
  }
  for (const dir of scratchDirs.splice(0)) removeTree(dir);
}

export function mcp(spool, args = []) {
  return mcpOver([CLI, 'serve', ...args], spool.env);
}

/** An MCP client of a Node script run over stdio; `call` returns a tool's structured answer. */
export async function mcpOver(nodeArgs, env) {
  const transport = new StdioClientTransport({ command: process.execPath, args: nodeArgs, env, stderr: process.env.BENCH_SERVER_STDERR ? 'inherit' : 'ignore' });
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(transport);
  const call = async (name, args_ = {}) => {
    const result = await client.callTool({ name, arguments: args_ }, undefined, { timeout: 600_000 });
    if (result.isError) throw new Error(`${name}: ${result.content[0].text}`);
    return result.structuredContent;
  };
  return { client, call, pid: transport.pid, close: () => client.close() };
}

export function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1), mean: sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1) };
}

export function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** A memory figure of /proc/<pid>/status (VmHWM, VmRSS) in MB; null when the process is gone. */
function statusMb(pid, field) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)[1]) / 1024;
  } catch {
    return null;
  }
}

export const peakRssMb = (pid) => statusMb(pid, 'VmHWM');
export const rssMb = (pid) => statusMb(pid, 'VmRSS');

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/**
 * CPU milliseconds used so far by each living process of a spool, with its role: the MCP
 * server, the runner or a supervisor; the workers are reaped by the supervisors, so their
 * time is a supervisor's children's time. `client` is this process (the MCP client).
 */
export function cpuSnapshot(spool) {
  const processes = new Map();
  for (const pid of spoolPids(spool)) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const own = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
      const children = (Number(fields[13]) + Number(fields[14])) * CLOCK_TICK_MS;
      const role = cmdline.includes('supervisor-main') ? 'supervisors' : cmdline.includes('runner-entry') ? 'runner' : cmdline.includes('\0serve') ? 'server' : null;
      if (role) processes.set(pid, { role, own, children });
    } catch {
      // gone meanwhile
    }
  }
  const client = process.cpuUsage();
  return { processes, client: (client.user + client.system) / 1000 };
}

/**
 * CPU milliseconds by role between two snapshots. A process that exited in between is left
 * out (its share is lost); one that started in between counts whole.
 */
export function cpuBetween(before, after) {
  const roles = { client: after.client - before.client, server: 0, runner: 0, supervisors: 0, workers: 0 };
  for (const [pid, now_] of after.processes) {
    const then = before.processes.get(pid) ?? { own: 0, children: 0 };
    roles[now_.role] += now_.own - then.own;
    if (now_.role === 'supervisors') roles.workers += now_.children - then.children;
  }
  return roles;
}

/**
 * Milliseconds to create a folder in `dir` (median of 50). On ext4 without a journal this
 * grows for minutes after many files were removed: new inodes skip the recently freed ones.
 */
export function folderCreateMs(dir) {
  const probe = fs.mkdtempSync(path.join(dir, 'probe-'));
  const times = [];
  for (let i = 0; i < 50; i += 1) {
    const t0 = performance.now();
    fs.mkdirSync(path.join(probe, String(i)));
    times.push(performance.now() - t0);
  }
  fs.rmSync(probe, { recursive: true, force: true });
  return times.sort((a, b) => a - b)[times.length >> 1];
}

/** inotify watches held by a process (one per watched inode). */
export function inotifyWatches(pid) {
  let count = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      count += fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((line) => line.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return count;
}

export function which(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).stdout.trim() || null;
}

export function machineFacts(dir) {
  const cpus = os.cpus();
  let filesystem = 'unknown';
  try {
    // findmnt tells ext4 from ext2/3 (stat -f cannot: they share a magic number)
    filesystem = execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '--target', dir], { encoding: 'utf8' }).trim();
  } catch {
    try {
      filesystem = execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
    } catch {
      // neither util-linux nor Linux stat
    }
  }
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    filesystem,
    date: new Date().toISOString(),
  };
}

export function runChild(script, args, env) {
  return spawn(process.execPath, [script, ...args], { env, stdio: ['pipe', 'pipe', 'inherit'] });
}

export function lines(child) {
  let buffer = '';
  const queue = [];
  const waiters = [];
  child.stdout.on('data', (chunk) => {
    buffer += chunk.toString();
    let index;
    while ((index = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      if (waiters.length) waiters.shift()(line);
      else queue.push(line);
    }
  });
  return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)));
}
