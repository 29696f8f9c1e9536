// Stops and removes a throwaway PostgreSQL cluster once the process that made it is gone
// (killed by a timeout, a crash, a SIGKILL): no test leaves a server or a folder behind.
// Usage: node pg-watchdog.mjs <ownerPid> <baseDir> <pg_ctl> <dataDir> <runAsUser or ''>
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { clearInterval, setInterval } from 'node:timers';

const [ownerPid, base, pgCtl, data, runAs] = process.argv.slice(2);

function ownerAlive() {
  try {
    process.kill(Number(ownerPid), 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const timer = setInterval(() => {
  if (!fs.existsSync(base)) {
    clearInterval(timer); // removed by its owner: nothing to do
    return;
  }
  if (ownerAlive()) return;
  clearInterval(timer);
  const argv = [pgCtl, '-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'];
  const [command, ...args] = runAs ? ['runuser', '-u', runAs, '--', ...argv] : argv;
  if (fs.existsSync(`${data}/postmaster.pid`)) spawnSync(command, args, { stdio: 'ignore', timeout: 60_000 });
  fs.rmSync(base, { recursive: true, force: true });
}, 1000);
process.on('SIGTERM', () => process.exit(0));
