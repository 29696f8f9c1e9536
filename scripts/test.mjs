// `npm test`: the build, then the type check and lint, and the unit and integration tests side by
// side. The tests start as soon as dist/ is built and run at normal priority; the type check and
// the lint (one process, scripts/check.mjs: one core, ~30 s of CPU) run niced, in the time the
// tests spend waiting for processes; their output follows the tests'. Any step that fails fails
// the whole.
// The build here only emits (esbuild, one file per module, scripts/emit.mjs: the JavaScript tsc
// emits, in a fraction of a second): the type check step checks lib/ with the same compiler
// options, and test/ and bench/ besides. Arguments go to vitest.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');

/**
 * The environment of every step, without NODE_EXTRA_CA_CERTS: Node (20) reads and parses the
 * certificates it names at the start of every process, TLS or not (~40 ms of CPU for a 220 kB
 * system bundle), and the tests start about 700 Node processes (CLI calls, runners, supervisors,
 * servers, workers); nothing in npm test makes a TLS connection that would need them (the tests
 * against real agent CLIs, which go online, are in test/e2e).
 */
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;

/** Runs a command from the project root; resolves to its exit code and, when buffered, its output. */
function run(command, args, { buffered = false, nice = 0 } = {}) {
  const started = Date.now();
  const child = spawn(command, args, { cwd: ROOT, env: ENV, stdio: buffered ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
  if (nice !== 0 && child.pid !== undefined) {
    try {
      os.setPriority(child.pid, nice);
    } catch {
      // not allowed here: it runs at normal priority
    }
  }
  let output = '';
  if (buffered) for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => (output += chunk));
  return new Promise((resolve) => {
    child.on('error', (error) => resolve({ code: 127, output: `${error.message}\n`, seconds: 0 }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output, seconds: (Date.now() - started) / 1000 }));
  });
}

function report(name, result) {
  process.stdout.write(`\n── ${name}: ${result.code === 0 ? 'ok' : `failed (exit ${result.code})`}, ${result.seconds.toFixed(1)} s\n${result.output}`);
}

const buildSteps = [
  ['build: emit', process.execPath, ['scripts/emit.mjs']],
  ['build: tool list', process.execPath, ['scripts/write-tool-list.mjs']],
  ['build: bundles', process.execPath, ['scripts/bundle.mjs']],
];
for (const [name, command, args] of buildSteps) {
  const result = await run(command, args, { buffered: true });
  if (result.code !== 0) {
    report(name, result);
    process.exit(result.code);
  }
}

// one process, one TypeScript program for both (scripts/check.mjs)
const checks = [['typecheck and lint', run(process.execPath, ['scripts/check.mjs'], { buffered: true, nice: 10 })]];
const tests = await run(path.join(BIN, 'vitest'), ['run', ...process.argv.slice(2)]);
const results = [['vitest', tests]];
for (const [name, pending] of checks) {
  const result = await pending;
  report(name, result);
  results.push([name, result]);
}
const failed = results.filter(([, result]) => result.code !== 0);
process.stdout.write(`\nnpm test: ${results.map(([name, result]) => `${name} ${result.code === 0 ? 'ok' : 'FAILED'} (${result.seconds.toFixed(0)} s)`).join(', ')}\n`);
process.exit(failed.length === 0 ? 0 : 1);
