// Asks the built lib/ (dist/, as the runner runs it) to stop processes by targets that are not
// a job's, from inside a process group of its own that holds a sentinel: a kill(-0), a kill of
// its own group or a tree walk from its parent ends this process and the sentinel.
// node signal-child.mjs <case> <pid of a process that has exited>; prints what it got.
import { terminateJobProcesses } from '../../dist/runner/processes.js';

const [which, exitedArg] = process.argv.slice(2);
const exited = Number(exitedArg);
const ownGroup = Number(
  (await import('node:fs')).readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[2],
);

const cases = {
  // the group of a pid read as 0 ('' or a missing field): kill(-0) is this process's own group
  'group 0': () => terminateJobProcesses({ pid: exited, pgid: 0 }, 500),
  // a recorded job whose pid and group are now this process and its group
  'own group': () => terminateJobProcesses({ pid: process.pid, pgid: ownGroup }, 500),
  // a tree walk from this process's parent reaches this process and the sentinel
  'ancestor': () => terminateJobProcesses({ pid: process.ppid, pgid: exited }, 500),
  // pid 0, 1 and -1 reach the own group, init or everything: asked only once the guard says no
  'zero and one': async () => {
    const { mayKillGroup, mayKillProcess, signalGroup, signalProcess } = await import('../../dist/signals.js');
    for (const id of [0, -0, 1, -1, NaN, process.pid, process.ppid]) {
      if (mayKillProcess(id)) throw new Error(`mayKillProcess(${id}) is true`);
      if (signalProcess(id, 'SIGTERM')) throw new Error(`signalProcess(${id}) sent`);
    }
    for (const id of [0, -0, 1, -1, NaN, ownGroup]) {
      if (mayKillGroup(id)) throw new Error(`mayKillGroup(${id}) is true`);
      if (signalGroup(id, 'SIGTERM')) throw new Error(`signalGroup(${id}) sent`);
    }
    return [
      ...await terminateJobProcesses({ pid: 0, pgid: 0 }, 500),
      ...await terminateJobProcesses({ pid: 1, pgid: 1 }, 500),
    ];
  },
};

const survivors = await cases[which]();
process.stdout.write(`${JSON.stringify({ case: which, survivors })}\n`);
