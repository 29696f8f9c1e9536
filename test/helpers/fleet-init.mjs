// One of several processes initialising the same queue at once: prints "ready", waits for a
// line on stdin (so that all start together), opens the queue (which applies the missing
// migrations under the advisory lock) and prints the schema report as JSON.
// Usage: node fleet-init.mjs <name>   (AGENT_ASYNC_QUEUE_URL names the queue)
import readline from 'node:readline';
import { FleetQueue } from '../../dist/fleet/index.js';

const lines = readline.createInterface({ input: process.stdin });
process.stdout.write('ready\n');
await new Promise((resolve) => lines.once('line', resolve));
lines.close();
try {
  const queue = await FleetQueue.open(process.env.AGENT_ASYNC_QUEUE_URL, { role: 'init', appliedBy: process.argv[2] });
  process.stdout.write(`${JSON.stringify({ ok: true, ...queue.schema })}\n`);
  await queue.close();
} catch (error) {
  process.stdout.write(`${JSON.stringify({ ok: false, message: error.message })}\n`);
}
