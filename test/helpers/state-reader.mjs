// Reads state.json files of a spool in a tight loop (Node and, if installed, jq) while other
// processes write them, and reports how many reads were not valid JSON.
// Usage: node state-reader.mjs <home> ; stops on SIGTERM and prints {reads, bad, jqReads, jqBad}.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const jobsDir = path.join(process.argv[2], 'jobs');
const hasJq = spawnSync('jq', ['--version']).status === 0;
const counts = { reads: 0, bad: 0, jqReads: 0, jqBad: 0, hasJq, badSamples: [] };
let stop = false;
process.on('SIGTERM', () => (stop = true));

let round = 0;
while (!stop) {
  let ids = [];
  try {
    ids = fs.readdirSync(jobsDir);
  } catch {
    // not created yet
  }
  for (const id of ids.slice(-40)) {
    const file = path.join(jobsDir, id, 'state.json');
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    counts.reads += 1;
    try {
      JSON.parse(text);
    } catch {
      counts.bad += 1;
      if (counts.badSamples.length < 3) counts.badSamples.push(text.slice(0, 200));
    }
  }
  round += 1;
  if (hasJq && round % 5 === 0 && ids.length > 0) {
    const id = ids[Math.floor(Math.random() * ids.length)];
    const result = spawnSync('jq', ['-e', '.status', path.join(jobsDir, id, 'state.json')], { encoding: 'utf8' });
    counts.jqReads += 1;
    if (result.status !== 0) counts.jqBad += 1;
  }
  await new Promise((resolve) => setImmediate(resolve));
}
process.stdout.write(JSON.stringify(counts));
