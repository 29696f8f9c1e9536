// node bench/worktree.mjs [--runs=N] [--files=N]     (needs `npm run build` first)
// Worktree isolation on a generated repository (10,000 files by default): how long a snapshot,
// a worktree, the end of a job, an apply and a discard take, min / median / max over N runs.
// Plain `git worktree add` of the same commit is timed in the same run as the floor: on a
// loaded machine, or on ext4 right after thousands of files were removed, file creation
// itself is slow, and only the ratio says what agent-async adds.
// Prints a Markdown table on stderr and JSON on stdout; `worktreeBench()` is the same for
// bench.mjs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyChanges, createWorktree, discardJob, finishWorktree, snapshot } from '../dist/worktree/index.js';

const log = (message) => process.stderr.write(`${message}\n`);

function git(cwd, ...args) {
  const result = spawnSync('git', args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`git ${args.join(' ')}: ${result.stderr}`);
  return result.stdout.trim();
}

/** `files` text files of 1–8 KiB in 100 folders, committed, plus a few ignored ones. */
function generateRepository(repo, files) {
  fs.mkdirSync(repo, { recursive: true });
  git(repo, 'init', '-q');
  git(repo, 'config', 'user.name', 'bench');
  git(repo, 'config', 'user.email', 'bench@localhost');
  let bytes = 0;
  for (let index = 0; index < files; index += 1) {
    const dir = path.join(repo, `dir${String(index % 100).padStart(2, '0')}`);
    if (index < 100) fs.mkdirSync(dir);
    const content = `file ${index}\n`.repeat(100 + ((index * 7919) % 700));
    fs.writeFileSync(path.join(dir, `file${index}.txt`), content);
    bytes += content.length;
  }
  fs.writeFileSync(path.join(repo, '.gitignore'), 'build/\n');
  fs.mkdirSync(path.join(repo, 'build'));
  fs.writeFileSync(path.join(repo, 'build', 'out.bin'), Buffer.alloc(1024 * 1024));
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'generated');
  return bytes;
}

/** The user's ongoing work: 20 edited files and 5 new ones. */
function editSome(repo, round) {
  for (let index = 0; index < 20; index += 1) {
    fs.appendFileSync(path.join(repo, `dir${String(index).padStart(2, '0')}`, `file${index}.txt`), `user edit ${round}\n`);
  }
  for (let index = 0; index < 5; index += 1) fs.writeFileSync(path.join(repo, `new-${round}-${index}.txt`), `new ${round}\n`);
}

async function timed(samples, name, work) {
  const started = performance.now();
  const value = await work();
  (samples[name] ??= []).push(performance.now() - started);
  return value;
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, min: sorted[0], median: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted.at(-1) };
}

export async function worktreeBench({ runs = 5, files = 10_000 } = {}) {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'aa-bench-wt-')));
  try {
    const repo = path.join(base, 'repo');
    const ctx = { home: path.join(base, 'spool') };
    fs.mkdirSync(ctx.home, { mode: 0o700 });
    const generateStarted = performance.now();
    const bytes = generateRepository(repo, files);
    log(`generated ${files} files (${(bytes / 1e6).toFixed(0)} MB) in ${((performance.now() - generateStarted) / 1000).toFixed(1)} s`);
    const samples = {};
    for (let run = 0; run < runs; run += 1) {
      const clean = `clean${run}`;
      await timed(samples, 'snapshot, clean tree', () => snapshot(ctx, repo, clean));
      await discardJob(ctx, repo, clean);
      editSome(repo, run);
      const id = `job${run}`;
      const taken = await timed(samples, 'snapshot, 25 files changed', () => snapshot(ctx, repo, id));
      // the floor: plain git checking out the same commit, in the same run
      const plain = path.join(base, `plain${run}`);
      await timed(samples, 'floor: git worktree add --detach', async () => git(repo, 'worktree', 'add', '-q', '--detach', plain, taken.base_commit));
      git(repo, 'worktree', 'remove', '--force', plain);
      const record = await timed(samples, 'worktree creation', () => createWorktree(ctx, taken));
      fs.appendFileSync(path.join(record.path, 'dir50', 'file50.txt'), 'agent edit\n');
      fs.writeFileSync(path.join(record.path, `agent-${run}.txt`), 'agent\n');
      await timed(samples, 'finish (commit, changes, patch, remove)', () => finishWorktree(ctx, { id, repo_root: repo }, path.join(base, `${id}.patch`)));
      const applied = await timed(samples, 'apply (2 files)', () => applyChanges(ctx, { id, repo_root: repo }, repo));
      if (applied.kind !== 'applied') throw new Error(`apply ${id}: ${JSON.stringify(applied)}`);
      await timed(samples, 'discard', () => discardJob(ctx, repo, id));
      git(repo, 'checkout', '-q', '--', '.');
      git(repo, 'clean', '-qfd');
    }
    const rows = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, summary(values)]));
    return { files, megabytes: Math.round(bytes / 1e6), git: git(repo, 'version'), runs, rows };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

export function worktreeTable(result) {
  const ms = (value) => (value < 100 ? value.toFixed(1) : value.toFixed(0));
  const lines = [
    `Worktree isolation on ${result.files} files (${result.megabytes} MB), ${result.git}, ${result.runs} runs (ms):`,
    '',
    '| step | min | median | max |',
    '|---|---|---|---|',
  ];
  for (const [name, row] of Object.entries(result.rows)) lines.push(`| ${name} | ${ms(row.min)} | ${ms(row.median)} | ${ms(row.max)} |`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const option = (name, fallback) => Number(process.argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
  const result = await worktreeBench({ runs: option('runs', 5), files: option('files', 10_000) });
  log(worktreeTable(result));
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
