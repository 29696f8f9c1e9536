// A separate process that submits exec jobs through the library, as a CLI or MCP server would.
// Usage: node submitter.mjs <count> <ledger> <cwdBase> <maxPauseMs> ; prints the job ids, one per line.
import fs from 'node:fs';
import path from 'node:path';
import * as jobs from '../../dist/jobs.js';

const [count, ledger, cwdBase, maxPauseMs = '20'] = process.argv.slice(2);
const spool = jobs.openContext();
for (let i = 0; i < Number(count); i += 1) {
  const cwd = path.join(cwdBase, `c${i % 8}`);
  fs.mkdirSync(cwd, { recursive: true });
  const { job_id } = await jobs.submit(spool, {
    agent: 'exec',
    argv: ['sh', '-c', `echo "$AGENT_ASYNC_JOB_ID" >> ${ledger}; sleep 0.02`],
    cwd,
  });
  process.stdout.write(`${job_id}\n`);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * Number(maxPauseMs)));
}
