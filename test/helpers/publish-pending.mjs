// Publishes pending exec jobs straight into a spool without starting a runner (so a test can
// decide which runners race for them). Usage: node publish-pending.mjs <count> <ledger> <cwd> [<seconds each job sleeps first>]
import fs from 'node:fs';
import * as jobs from '../../dist/jobs.js';
import { newJobId } from '../../dist/spool/ids.js';
import { newJobState } from '../../dist/spool/state.js';
import { publishJob } from '../../dist/spool/store.js';

const [count, ledger, cwd, sleepSeconds = '0'] = process.argv.slice(2);
const spool = jobs.openContext();
const ids = [];
for (let i = 0; i < Number(count); i += 1) {
  fs.mkdirSync(`${cwd}/c${i}`, { recursive: true });
  const { request } = jobs.prepareJob(spool, {
    agent: 'exec',
    argv: ['sh', '-c', `echo "$AGENT_ASYNC_JOB_ID" >> ${ledger}; sleep ${Number(sleepSeconds)}`],
    cwd: `${cwd}/c${i}`,
  });
  const state = newJobState(newJobId(), request);
  publishJob(spool.paths, state);
  ids.push(state.id);
}
process.stdout.write(JSON.stringify(ids));
