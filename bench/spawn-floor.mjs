// The least a Node process pays per job: spawn `true` (own process group, no shell, output
// discarded) and wait for its exit, N times in a row. Prints milliseconds per job.
import { spawn } from 'node:child_process';

const count = Number(process.argv[2] ?? 500);
const started = performance.now();
for (let i = 0; i < count; i += 1) {
  const child = spawn('true', [], { detached: true, stdio: 'ignore' });
  await new Promise((resolve, reject) => child.on('exit', resolve).on('error', reject));
}
process.stdout.write(`${(performance.now() - started) / count}\n`);
