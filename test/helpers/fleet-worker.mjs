// The worker of the fleet host tests (an exec job's command): appends one line per start to a
// ledger file of its own job (<ledger dir>/<job id>), so a job started twice anywhere shows,
// prints its output, then behaves as its mode says:
//   quick <lines>      prints <lines> numbered lines and exits 0
//   sleep <ms> <lines> prints, sleeps, prints "end", exits 0
//   hold               prints "holding" and waits for a signal (at most 120 s)
// Usage: node fleet-worker.mjs <ledger dir> <mode> [args]
import fs from 'node:fs';
import path from 'node:path';

const [ledgerDir, mode = 'quick', ...args] = process.argv.slice(2);
const id = process.env.AGENT_ASYNC_JOB_ID ?? 'unknown';
const host = process.env.AGENT_ASYNC_HOST_NAME ?? '?';
fs.appendFileSync(path.join(ledgerDir, id), `start ${id} ${host} ${process.pid}\n`);
const print = (count) => {
  for (let i = 0; i < count; i += 1) process.stdout.write(`line ${i} of ${id}\n`);
};
if (mode === 'quick') {
  print(Number(args[0] ?? 3));
} else if (mode === 'sleep') {
  print(Number(args[1] ?? 3));
  await new Promise((resolve) => setTimeout(resolve, Number(args[0] ?? 500)));
  process.stdout.write('end\n');
} else if (mode === 'hold') {
  process.stdout.write('holding\n');
  await new Promise((resolve) => setTimeout(resolve, 120_000));
}
