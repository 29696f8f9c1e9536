// The floor of a wake-up in agent-async's design, without agent-async: the same processes and
// the same durable write, and nothing else. Three processes, as in the exitwake scenario:
//   supervisor  spawns the worker (its output to a file), and on its exit writes state.json
//               durably (temp file, fsync, rename; the folder fsync after), as the supervisor does;
//   server      watches the job folder (fs.watch), reads state.json on its rename and answers
//               one line on stdout, as a waiting `serve` does;
//   this file   in the bench process: the client, reading that line.
// Printed: one JSON line per sample, {exit_ms} (the worker's last instruction, a timestamp it
// prints, to the client reading the answer) or, with `notify`, {notify_ms} (a fourth process
// writes a done file as a notify does, to the answer; the supervisor writes the state on seeing it).
//
// node bench/wake-floor.mjs exit|notify <count> <folder>
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const [role, ...rest] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();

function writeDurably(file, text) {
  const temp = `${file}.tmp`;
  const fd = fs.openSync(temp, 'wx', 0o600);
  fs.writeSync(fd, text);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(temp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  fs.fsyncSync(dir);
  fs.closeSync(dir);
}

/** Reads lines from a stream, one promise per line asked for. */
function lineReader(stream) {
  const lines = [];
  const waiting = [];
  readline.createInterface({ input: stream }).on('line', (line) => (waiting.length > 0 ? waiting.shift()(line) : lines.push(line)));
  return () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiting.push(resolve)));
}

if (role === 'server') {
  // a line `<folder>` on stdin: watch it, say `armed`, answer `done` once its state.json says so
  const next = lineReader(process.stdin);
  for (;;) {
    const dir = await next();
    await new Promise((resolve) => {
      const check = () => {
        let text;
        try {
          text = fs.readFileSync(path.join(dir, 'state.json'), 'utf8');
        } catch {
          return;
        }
        if (JSON.parse(text).status !== 'done') return;
        watcher.close();
        process.stdout.write('done\n');
        resolve();
      };
      const watcher = fs.watch(dir, (_event, name) => name === 'state.json' && check());
      process.stdout.write('armed\n');
    });
  }
} else if (role === 'supervisor') {
  // a line `<mode> <folder>` on stdin: run the stamp worker there (exit), or a worker that keeps
  // running until a done file appears (notify); then the terminal state, durably
  const next = lineReader(process.stdin);
  for (;;) {
    const [mode, dir] = (await next()).split(' ');
    const out = fs.openSync(path.join(dir, 'output.log'), 'a', 0o600);
    const script = mode === 'exit' ? 'sleep 0.05; printf "%.6f\\n", time * 1000' : 'sleep 60';
    const child = spawn('perl', ['-MTime::HiRes=time,sleep', '-e', script], { stdio: ['ignore', out, out], detached: true });
    fs.closeSync(out);
    process.stdout.write('spawned\n');
    if (mode === 'exit') {
      await new Promise((resolve) => child.once('exit', resolve));
      writeDurably(path.join(dir, 'state.json'), JSON.stringify({ status: 'done', exit_code: 0 }));
    } else {
      await new Promise((resolve) => {
        const watcher = fs.watch(dir, (_event, name) => {
          if (name !== 'done' || !fs.existsSync(path.join(dir, 'done'))) return;
          watcher.close();
          writeDurably(path.join(dir, 'state.json'), JSON.stringify({ status: 'done', summary: fs.readFileSync(path.join(dir, 'done'), 'utf8') }));
          resolve();
        });
      });
      child.kill('SIGKILL');
    }
  }
} else if (role === 'notifier') {
  // a line `<folder>` on stdin: write its done report as a notify does (another process, as
  // server B is, so that its flushes do not hold up the client reading the answer)
  const next = lineReader(process.stdin);
  for (;;) writeDurably(path.join(await next(), 'done'), 'floor');
} else {
  const [mode, countText, base] = [role, ...rest];
  const count = Number(countText);
  const start = (which) => spawn(process.execPath, [new URL(import.meta.url).pathname, which], { stdio: ['pipe', 'pipe', 'inherit'] });
  const server = start('server');
  const supervisor = start('supervisor');
  const fromServer = lineReader(server.stdout);
  const fromSupervisor = lineReader(supervisor.stdout);
  const notifier = mode === 'notify' ? start('notifier') : null;
  for (let i = 0; i < count; i += 1) {
    const dir = fs.mkdtempSync(path.join(base, 'f'));
    fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ status: 'running' }));
    server.stdin.write(`${dir}\n`);
    await fromServer(); // armed
    supervisor.stdin.write(`${mode} ${dir}\n`);
    await fromSupervisor(); // spawned
    if (mode === 'exit') {
      await fromServer();
      const at = now();
      const stamp = Number(fs.readFileSync(path.join(dir, 'output.log'), 'utf8').trim());
      process.stdout.write(`${JSON.stringify({ exit_ms: at - stamp })}\n`);
    } else {
      await new Promise((resolve) => setTimeout(resolve, 40));
      const sent = now();
      notifier.stdin.write(`${dir}\n`);
      await fromServer();
      process.stdout.write(`${JSON.stringify({ notify_ms: now() - sent })}\n`);
    }
  }
  server.kill();
  supervisor.kill();
  notifier?.kill();
}
