// Makes N running jobs whose "supervisor" is this process, then ends them on request from
// stdin ("finish <id>" or "finish-all"), printing the moment of each terminal write, so the
// benchmark can time the write → wait answer path across processes.
import readline from 'node:readline';
import * as jobs from '../dist/jobs.js';
import { newJobId } from '../dist/spool/ids.js';
import { newJobState } from '../dist/spool/state.js';
import fs from 'node:fs';
import path from 'node:path';
import { applyTransition, publishJob, readState } from '../dist/spool/store.js';
import { transition } from '../dist/spool/state.js';
import { selfIdentity } from '../dist/runner/processes.js';

const count = Number(process.argv[2]);
const spool = jobs.openContext();
const { request } = jobs.prepareJob(spool, { agent: 'exec', argv: ['true'], cwd: process.cwd() });
const me = selfIdentity();
const ids = [];
for (let i = 0; i < count; i += 1) {
  const state = newJobState(newJobId(), request);
  publishJob(spool.paths, state);
  applyTransition(spool.paths, state.id, { name: 'start', attempt: 1, epoch: null, supervisor: me });
  ids.push(state.id);
}
process.stdout.write(`${JSON.stringify(ids)}\n`);
const outcome = { status: 'done', exit_code: 0, signal: null, error: null, notified: null, result: null, session_id: null, usage: null };
const now = () => performance.timeOrigin + performance.now();
// The terminal write as the supervisor makes it (temp file, fsync, rename, folder fsync),
// timed just before the rename: the moment a reader can first see it.
const finish = (id) => {
  const read = readState(spool.paths, id);
  const next = transition(read.state, { name: 'finish', outcome });
  const temp = path.join(spool.paths.tmp, `bench-${id}.tmp`);
  const fd = fs.openSync(temp, 'w', 0o600);
  fs.writeFileSync(fd, `${JSON.stringify(next, null, 2)}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const at = now();
  fs.renameSync(temp, path.join(spool.paths.jobs, id, 'state.json'));
  const dir = fs.openSync(path.join(spool.paths.jobs, id), 'r');
  fs.fsyncSync(dir);
  fs.closeSync(dir);
  fs.rmSync(path.join(spool.paths.active, id), { force: true });
  return at;
};
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, id] = line.split(' ');
  if (verb === 'finish') process.stdout.write(`${id} ${finish(id)}\n`);
  else if (verb === 'finish-all') {
    const times = ids.map((each) => [each, finish(each)]);
    process.stdout.write(`${JSON.stringify(Object.fromEntries(times))}\n`);
  } else if (verb === 'exit') process.exit(0);
});
