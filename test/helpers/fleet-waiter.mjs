// A waiter on another "host": waits (in this process) for any of the job ids to end, through
// the fleet queue named by AGENT_ASYNC_QUEUE_URL, and prints "armed" once its wait is in place,
// then one JSON line: which jobs ended and what woke it (notify, resync after a reconnect, poll).
// Usage: node fleet-waiter.mjs <idsJson> <timeoutMs> <pollMs>
import { FleetQueue, awaitAnyEnded } from '../../dist/fleet/index.js';

const [idsJson, timeoutMs, pollMs] = process.argv.slice(2);
const queue = await FleetQueue.open(process.env.AGENT_ASYNC_QUEUE_URL, { role: 'waiter', listener: { maxBackoffMs: 500 } });
const result = await awaitAnyEnded(queue, JSON.parse(idsJson), {
  timeoutMs: Number(timeoutMs),
  pollMs: Number(pollMs),
  onArmed: () => process.stdout.write('armed\n'),
});
const listener = queue.listener().stats;
process.stdout.write(`${JSON.stringify({
  wokeBy: result.wokeBy,
  timedOut: result.timedOut,
  settled: result.settled.map((snap) => ({ id: snap.id, status: snap.kind === 'ok' ? snap.job.state.status : snap.kind })),
  connects: listener.connects,
  failures: listener.failures,
})}\n`);
await queue.close();
