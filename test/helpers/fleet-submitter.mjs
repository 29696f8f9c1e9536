// A submitter of the chaos test: a process of its own, as the CLI or MCP server of another
// machine is. It submits <count> exec jobs of the fleet worker (sleep mode: 100-800 ms, two
// lines of output) to the queue named by AGENT_ASYNC_QUEUE_URL, unpinned, with pauses of up
// to 120 ms, and prints `submitted <id>` once the queue has each. A submit that fails (the
// server restarting) is tried again with the same job until the queue has it, so a job whose
// insert committed but whose answer was lost is neither lost nor submitted twice. Durations
// and pauses come from <seed>, so a chaos run replays. Prints `finished <count> (<n> submits
// tried again)` at the end.
// Usage: node fleet-submitter.mjs <ledgerDir> <count> <seed>
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetQueue, getJob, submitJob } from '../../dist/fleet/index.js';
import { newJobId } from '../../dist/spool/ids.js';
import { newJobState } from '../../dist/spool/state.js';
import { jobRequest } from './job-request.mjs';
import { seeded } from './seeded.mjs';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-worker.mjs');
const [ledgerDir, count, seed] = process.argv.slice(2);
const jitter = seeded(Number(seed));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const queue = await FleetQueue.open(process.env.AGENT_ASYNC_QUEUE_URL, { role: 'chaos submitter' });

let triedAgain = 0;

/** Submits until the queue has the job: an insert that failed may have committed all the same. */
async function submitOnce(state) {
  const needs = { agent: 'exec', host: null, labels: [], features: [] };
  for (;;) {
    try {
      await submitJob(queue.db, { state, needs, submittedHost: `submitter pid ${process.pid}` });
      return;
    } catch {
      triedAgain += 1;
      await pause(200);
      try {
        if (await getJob(queue.db, state.id)) return;
      } catch {
        // still away: try again
      }
    }
  }
}

for (let i = 0; i < Number(count); i += 1) {
  const argv = [process.execPath, WORKER, ledgerDir, 'sleep', String(100 + Math.floor(jitter() * 700)), '2'];
  const state = newJobState(newJobId(), jobRequest('exec', argv, { cwd: os.tmpdir() }));
  await submitOnce(state);
  process.stdout.write(`submitted ${state.id}\n`);
  await pause(Math.floor(jitter() * 120));
}
process.stdout.write(`finished ${count} (${triedAgain} submits tried again)\n`);
await queue.close();
