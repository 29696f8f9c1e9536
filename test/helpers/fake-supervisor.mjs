// A stand-in for dist/runner/supervisor-main.js that speaks its IPC messages, to test the
// runner's supervisor pool alone. The first one started in $FAKE_DIR is ready at once, every
// later one after $FAKE_BOOT_MS. A job named `<anything>-<ms>` "runs" that long. Each job and
// each ready is appended to $FAKE_DIR/ledger as `<event> <job id> <pid> <epoch ms>`.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.FAKE_DIR;
const ledger = path.join(dir, 'ledger');
const note = (event, jobId) => fs.appendFileSync(ledger, `${event} ${jobId} ${process.pid} ${Date.now()}\n`);
let first = true;
try {
  fs.mkdirSync(path.join(dir, 'first'));
} catch {
  first = false;
}
if (process.env.FAKE_EXIT_AT_START) process.exit(1);

process.on('message', (message) => {
  if (message?.type !== 'run') return;
  note('run', message.jobId);
  setTimeout(() => {
    note('end', message.jobId);
    process.send({ type: 'finished', jobId: message.jobId, status: 'done' });
  }, Number(message.jobId.split('-').at(-1)));
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => {
  note('ready', '-');
  process.send({ type: 'ready' });
}, first ? 0 : Number(process.env.FAKE_BOOT_MS ?? 0));
