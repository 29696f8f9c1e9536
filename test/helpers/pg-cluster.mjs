// A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl of the PostgreSQL
// that Debian installs (/usr/lib/postgresql/<v>/bin), in a temp folder, on a free port, with
// its unix socket in that folder. Superuser access is through the socket (trust); a test role
// logs in over TCP with a password (scram-sha-256), so the password path is exercised. When
// openssl exists the server also speaks TLS (self-signed; `caFile` verifies it). A watchdog
// process stops and removes the cluster if the owning process dies without doing it.
// Plain JavaScript so that `node bench/fleet.mjs` can use it too; types in pg-cluster.d.mts.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROLE = 'aa_test';

export class PgUnavailable extends Error {}

/** The newest PostgreSQL bin folder with initdb, pg_ctl and postgres, or undefined. */
export function findPgBin() {
  const candidates = [];
  if (process.env.AGENT_ASYNC_PG_BIN) candidates.push(process.env.AGENT_ASYNC_PG_BIN);
  try {
    const versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // not installed in the Debian place
  }
  return candidates.find((dir) => ['initdb', 'pg_ctl', 'postgres'].every((name) => fs.existsSync(path.join(dir, name))));
}

function postgresUser() {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function chownTree(dir, owner) {
  if (!owner) return;
  fs.chownSync(dir, owner.uid, owner.gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(full, owner);
    else fs.chownSync(full, owner.uid, owner.gid);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Processes whose process group is `pgid` (the postmaster and its backends). */
function groupPids(pgid) {
  const pids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

function makeCertificate(base, owner) {
  const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (openssl.status !== 0) return undefined;
  const key = path.join(base, 'server.key');
  const crt = path.join(base, 'server.crt');
  const made = spawnSync('openssl', [
    'req', '-new', '-x509', '-days', '2', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', crt,
  ], { encoding: 'utf8' });
  if (made.status !== 0) return undefined;
  fs.chmodSync(key, 0o600);
  if (owner) {
    fs.chownSync(key, owner.uid, owner.gid);
    fs.chownSync(crt, owner.uid, owner.gid);
  }
  return { key, crt };
}

/**
 * Starts a cluster. Throws PgUnavailable (with the reason) when PostgreSQL is not installed or
 * cannot be run here; any other failure is a bug and throws as it is.
 */
export async function startCluster({ log = () => undefined } = {}) {
  const bin = findPgBin();
  if (!bin) throw new PgUnavailable('PostgreSQL is not installed: no initdb/pg_ctl/postgres under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresUser() : undefined;
  if (asRoot && !owner) throw new PgUnavailable('running as root, but there is no postgres user to run the server as');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-pg-'));
  fs.chmodSync(base, 0o755);
  const data = path.join(base, 'data');
  const socketDir = path.join(base, 'sock');
  fs.mkdirSync(socketDir);
  const logFile = path.join(base, 'server.log');
  fs.writeFileSync(logFile, '');
  chownTree(base, owner);
  const as = (argv) => (asRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv);
  const run = (argv) => {
    const [command, ...args] = as(argv);
    return spawnSync(command, args, { encoding: 'utf8', cwd: base, timeout: 120_000 });
  };
  const watchdog = spawn(process.execPath, [path.join(HERE, 'pg-watchdog.mjs'), String(process.pid), base, path.join(bin, 'pg_ctl'), data, asRoot ? 'postgres' : ''], {
    detached: true, stdio: 'ignore',
  });
  watchdog.unref();
  const cluster = { base, data, socketDir, logFile, bin, port: 0, password: crypto.randomBytes(12).toString('hex'), role: ROLE };
  const fail = (what, result) => {
    const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '';
    return new Error(`${what} failed (exit ${result.status}): ${result.stderr || result.stdout}\n${tail}`);
  };

  const init = run([path.join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  if (init.status !== 0) {
    destroyNow(cluster, watchdog, as);
    throw new PgUnavailable(`initdb could not make a cluster: ${(init.stderr || init.stdout || String(init.error)).trim().slice(0, 500)}`);
  }
  const cert = makeCertificate(base, owner);
  cluster.caFile = cert?.crt;
  fs.writeFileSync(path.join(data, 'pg_hba.conf'), [
    'local all postgres trust',
    'local all all scram-sha-256',
    'host all postgres 127.0.0.1/32 reject',
    'host all all 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n'));
  const settings = (port) => [
    `port = ${port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${socketDir}'`,
    // no fsync (nothing here survives an OS crash anyway), but a commit is written out before
    // it is answered: a committed transaction survives a crash of the server (cluster.kill), as
    // with a default PostgreSQL. With synchronous_commit off, an ALTER ROLE a test made just
    // before its kill was lost about one time in two.
    'fsync = off', 'synchronous_commit = on', 'full_page_writes = off',
    'max_connections = 200', "shared_buffers = '32MB'",
    ...(cert ? ['ssl = on', `ssl_cert_file = '${cert.crt}'`, `ssl_key_file = '${cert.key}'`] : []),
    'log_min_messages = warning', "log_line_prefix = '%m [%p] %a '",
  ].join('\n');
  chownTree(data, owner);

  const pgCtl = (args) => run([path.join(bin, 'pg_ctl'), '-D', data, ...args]);
  cluster.start = async () => {
    const started = pgCtl(['-l', logFile, '-w', '-t', '60', 'start']);
    if (started.status !== 0) throw fail('pg_ctl start', started);
  };
  for (let attempt = 1; ; attempt += 1) {
    cluster.port = await freePort();
    fs.writeFileSync(path.join(data, 'postgresql.auto.conf'), `${settings(cluster.port)}\n`);
    if (owner) fs.chownSync(path.join(data, 'postgresql.auto.conf'), owner.uid, owner.gid);
    const started = pgCtl(['-l', logFile, '-w', '-t', '60', 'start']);
    if (started.status === 0) break;
    if (attempt >= 3) {
      destroyNow(cluster, watchdog, as);
      throw fail('pg_ctl start', started);
    }
    log(`port ${cluster.port} was taken; trying another`);
  }

  cluster.postmasterPid = () => Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  cluster.stop = async (mode = 'fast') => {
    const stopped = pgCtl(['-m', mode, '-w', '-t', '60', 'stop']);
    if (stopped.status !== 0) throw fail('pg_ctl stop', stopped);
  };
  cluster.restart = async () => {
    await cluster.stop('fast');
    await cluster.start();
  };
  /** SIGKILLs the postmaster and every backend at once (a crash); `start` then recovers. */
  cluster.kill = async () => {
    const pid = cluster.postmasterPid();
    const pgid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[2]);
    const targets = pgid === pid ? groupPids(pgid) : [pid];
    for (const target of targets) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // zombies do not count: their parent (init) reaps them whenever it likes
    while (pgid === pid ? groupPids(pgid).length > 0 : alive(pid)) await sleep(20);
    // a dead postmaster that nobody reaped yet still answers kill(pid, 0), so the next start
    // would take its lock files for a live server's: an admin removes them after a crash too
    fs.rmSync(path.join(data, 'postmaster.pid'), { force: true });
    fs.rmSync(path.join(socketDir, `.s.PGSQL.${cluster.port}.lock`), { force: true });
  };
  cluster.admin = async (sql, params = []) => {
    const client = new pg.Client({ host: socketDir, port: cluster.port, user: 'postgres', database: 'postgres' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  let databases = 0;
  cluster.createDatabase = async (prefix = 'aa') => {
    databases += 1;
    const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${databases}`;
    await cluster.admin(`CREATE DATABASE ${name} OWNER ${ROLE}`);
    return name;
  };
  cluster.url = (database, { password = false, user = ROLE, query = '' } = {}) =>
    `postgres://${user}${password ? `:${cluster.password}` : ''}@127.0.0.1:${cluster.port}/${database}${query}`;
  cluster.pgpassFile = path.join(base, 'pgpass');
  fs.writeFileSync(cluster.pgpassFile, `127.0.0.1:${cluster.port}:*:${ROLE}:${cluster.password}\n`, { mode: 0o600 });
  cluster.destroy = async () => destroyNow(cluster, watchdog, as);

  await cluster.admin(`CREATE ROLE ${ROLE} LOGIN CREATEDB PASSWORD '${cluster.password}'`);
  return cluster;
}

function destroyNow(cluster, watchdog, as) {
  if (cluster.destroyed) return;
  cluster.destroyed = true;
  const [command, ...args] = as([path.join(cluster.bin, 'pg_ctl'), '-D', cluster.data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
  if (fs.existsSync(path.join(cluster.data, 'postmaster.pid'))) spawnSync(command, args, { stdio: 'ignore', timeout: 60_000 });
  fs.rmSync(cluster.base, { recursive: true, force: true });
  try {
    process.kill(watchdog.pid, 'SIGTERM');
  } catch {
    // gone
  }
}
