// Waits (in this process) for every job id given, all at once, with the spool's wait (no
// runner is started), and reports what each wait returned and how long after the terminal
// write it woke. Usage: node waiter.mjs <idsJson> <timeoutSeconds> <pollSeconds> <native|chokidar>
import { spoolPaths } from '../../dist/spool/layout.js';
import { waitForJob } from '../../dist/spool/watch.js';

const ids = JSON.parse(process.argv[2]);
const timeoutMs = Number(process.argv[3]) * 1000;
const pollMs = Number(process.argv[4]) * 1000;
const watchMode = process.argv[5] ?? 'native';
const paths = spoolPaths(process.env.AGENT_ASYNC_HOME);
let armed = 0;
const onArmed = () => {
  armed += 1;
  if (armed === ids.length) process.stdout.write('armed\n'); // every watch is in place
};
const results = await Promise.all([
  ...ids.map(async (id) => {
    const answer = await waitForJob(paths, id, { timeoutMs, pollMs, watchMode, onArmed });
    const state = answer.snapshot.kind === 'ok' ? answer.snapshot.state : null;
    return {
      id,
      status: state?.status ?? answer.snapshot.kind,
      timed_out: answer.timedOut,
      lag_ms: state?.finished_at ? Date.now() - Date.parse(state.finished_at) : null,
    };
  }),
]);
process.stdout.write(`${JSON.stringify(results)}\n`);
