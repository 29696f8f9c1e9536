// Publishes N pending jobs, prints their ids, then on "go" (a line on stdin) moves each one
// running → terminal with a gap of 1–40 ms, all interleaved, as a fast-failing worker would.
// Usage: node burst-writer.mjs <count> <cwd>
import readline from 'node:readline';
import * as jobs from '../../dist/jobs.js';
import { newJobId } from '../../dist/spool/ids.js';
import { newJobState } from '../../dist/spool/state.js';
import { applyTransition, publishJob } from '../../dist/spool/store.js';

const [count, cwd] = process.argv.slice(2);
const spool = jobs.openContext();
const ids = [];
for (let i = 0; i < Number(count); i += 1) {
  const { request } = jobs.prepareJob(spool, { agent: 'exec', argv: ['true'], cwd });
  const state = newJobState(newJobId(), request);
  publishJob(spool.paths, state);
  ids.push(state.id);
}
process.stdout.write(`${JSON.stringify(ids)}\n`);

const supervisor = { pid: process.pid, start_time: null, host: 'writer' };
const outcome = (i) => ({
  status: i % 3 === 0 ? 'error' : 'done',
  exit_code: i % 3 === 0 ? 1 : 0,
  signal: null,
  error: i % 3 === 0 ? { code: 'exit_nonzero', message: 'the worker exited with code 1' } : null,
  notified: null, result: null, session_id: null, usage: null,
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
readline.createInterface({ input: process.stdin }).once('line', async () => {
  const gaps = [];
  await Promise.all(ids.map(async (id, i) => {
    await sleep(Math.random() * 200);
    applyTransition(spool.paths, id, { name: 'start', attempt: 1, epoch: null, supervisor });
    const gap = 1 + Math.random() * 39;
    gaps.push(gap);
    await sleep(gap);
    applyTransition(spool.paths, id, { name: 'finish', outcome: outcome(i) });
  }));
  process.stdout.write(`${JSON.stringify({ done: ids.length, minGap: Math.min(...gaps), maxGap: Math.max(...gaps) })}\n`);
  process.exit(0);
});
