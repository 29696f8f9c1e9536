import fs from 'node:fs';
import type { Argv } from 'yargs';
import * as jobs from '../jobs.js';
import { isTerminal, type JobState } from '../jobs.js';
import { EXIT } from './exit-codes.js';
import { describeCommand, formatAge, formatDuration, formatUsage, worktreeLabel } from './format.js';
import { action, print, printJson, type Common } from './output.js';
import { printFleetStatus } from './queue.js';

/**
 * `agent-async status`: a live monitor, like htop for agent jobs. It redraws when the spool
 * changes (a watch on active/ and on the running jobs' folders, and a 1 s tick for the clocks),
 * reads only the tail of each output, fits the terminal, lets you select a job to read its
 * output or cancel it, and quits on q with the terminal restored.
 */

const RECENT_SCAN = 200;

export interface FrameJob {
  job_id: string;
  agent: string;
  status: string;
  cwd: string;
  /** An isolated job's branch and number of changed files. */
  worktree: string | null;
  command: string;
  elapsed_ms: number | null;
  last_line: string;
  created_at: string;
  error_code: string | null;
  tokens: string | null;
}

export interface Frame {
  runner: { alive: boolean; pid: number | null; epoch: number | null };
  concurrency: number;
  running: FrameJob[];
  pending: FrameJob[];
  recent: FrameJob[];
  at: string;
}

function frameJob(ctx: jobs.JobsContext, state: JobState, withTail: boolean): FrameJob {
  const elapsed = state.duration_ms ?? (state.started_at ? Date.now() - Date.parse(state.started_at) : null);
  return {
    job_id: state.id,
    agent: state.request.agent,
    status: state.status,
    cwd: state.request.cwd,
    worktree: worktreeLabel(state),
    command: describeCommand(state),
    elapsed_ms: elapsed,
    last_line: withTail ? jobs.lastOutputLine(ctx.paths, state.id) : '',
    created_at: state.created_at,
    error_code: state.error?.code ?? null,
    tokens: state.usage ? formatUsage(state.usage) : null,
  };
}

function placeOf(job: FrameJob): string {
  return job.worktree ? `${job.cwd} [${job.worktree}]` : job.cwd;
}

export function buildFrame(ctx: jobs.JobsContext, recentCount = 8): Frame {
  const queue = jobs.queueSummary(ctx.paths);
  const running = queue.running.map((state) => frameJob(ctx, state, true));
  const pending = queue.pending.map((state) => frameJob(ctx, state, false));
  const recent: FrameJob[] = [];
  let scanned = 0;
  for (const id of jobs.newestJobIds(ctx.paths)) {
    if (recent.length >= recentCount || (scanned += 1) > RECENT_SCAN) break;
    const read = jobs.readJob(ctx.paths, id);
    if (read.kind === 'ok' && isTerminal(read.state.status)) recent.push(frameJob(ctx, read.state, false));
  }
  const { alive, pid, epoch } = queue.runner;
  return {
    runner: { alive, pid, epoch },
    concurrency: ctx.config.concurrency,
    running,
    pending,
    recent,
    at: new Date().toISOString(),
  };
}

const ESC = '\x1b[';
const bold = (s: string): string => `${ESC}1m${s}${ESC}0m`;
const dim = (s: string): string => `${ESC}2m${s}${ESC}0m`;
const inverse = (s: string): string => `${ESC}7m${s}${ESC}0m`;
const colour: Record<string, (s: string) => string> = {
  done: (s) => `${ESC}32m${s}${ESC}0m`,
  error: (s) => `${ESC}31m${s}${ESC}0m`,
  cancelled: (s) => `${ESC}33m${s}${ESC}0m`,
  running: (s) => `${ESC}36m${s}${ESC}0m`,
  pending: (s) => s,
};

function fit(text: string, width: number): string {
  if (width <= 0) return '';
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text.padEnd(width);
}

/** The jobs a user can select, in screen order. */
export function selectable(frame: Frame): FrameJob[] {
  return [...frame.running, ...frame.pending, ...frame.recent];
}

export function renderFrame(frame: Frame, width: number, options: { selected?: number; color?: boolean; message?: string } = {}): string[] {
  const paint = options.color ? (fn: (s: string) => string, s: string): string => fn(s) : (_fn: unknown, s: string): string => s;
  const lines: string[] = [];
  const runner = frame.runner.alive ? `runner pid ${frame.runner.pid} (epoch ${frame.runner.epoch})` : 'runner idle (starts on the next job)';
  lines.push(paint(bold, fit(`agent-async — ${runner} · ${frame.running.length} running / ${frame.concurrency} · ${frame.pending.length} pending`, width)));
  lines.push('');
  let index = 0;
  const row = (job: FrameJob, text: string): void => {
    const mark = options.selected === index ? '>' : ' ';
    let line = fit(`${mark} ${text}`, width);
    if (options.selected === index) line = paint(inverse, line);
    else line = line.replace(job.status, paint(colour[job.status] ?? ((s: string) => s), job.status));
    lines.push(line);
    index += 1;
  };
  lines.push(paint(bold, 'RUNNING'));
  if (frame.running.length === 0) lines.push(paint(dim, '  (none)'));
  for (const job of frame.running) {
    row(job, `${job.job_id}  ${job.status}  ${job.agent.padEnd(7)} ${formatDuration(job.elapsed_ms).padStart(7)}  ${placeOf(job)}  ${job.command}`);
    lines.push(paint(dim, fit(`      ${job.last_line || '(no output yet)'}`, width)));
  }
  lines.push('');
  lines.push(paint(bold, 'PENDING'));
  if (frame.pending.length === 0) lines.push(paint(dim, '  (none)'));
  for (const job of frame.pending) row(job, `${job.job_id}  ${job.status}  ${job.agent.padEnd(7)} ${formatAge(job.created_at).padStart(7)}  ${placeOf(job)}  ${job.command}`);
  lines.push('');
  lines.push(paint(bold, 'RECENT'));
  if (frame.recent.length === 0) lines.push(paint(dim, '  (none)'));
  for (const job of frame.recent) {
    const detail = job.error_code ? `[${job.error_code}] ` : '';
    row(job, `${job.job_id}  ${job.status.padEnd(9)} ${job.agent.padEnd(7)} ${formatDuration(job.elapsed_ms).padStart(7)}  ${job.tokens ? `${job.tokens}  ` : ''}${detail}${job.command}`);
  }
  lines.push('');
  lines.push(paint(dim, fit(options.message ?? '↑/↓ select · enter output · c cancel · q quit', width)));
  return lines;
}

type View = { kind: 'list' } | { kind: 'output'; id: string } | { kind: 'confirm'; id: string };

/** The interactive monitor. Resolves when the user quits. */
export async function runMonitor(ctx: jobs.JobsContext): Promise<void> {
  const out = process.stdout;
  const input = process.stdin;
  let view: View = { kind: 'list' };
  let selected = 0;
  let message: string | undefined;
  let frame = buildFrame(ctx);
  const watchers = new Map<string, fs.FSWatcher>();
  let pendingDraw: NodeJS.Timeout | undefined;

  const draw = (): void => {
    const width = out.columns || 100;
    const height = out.rows || 40;
    let lines: string[];
    if (view.kind === 'output') {
      const page = jobs.readOutput(ctx.paths, view.id, -64 * 1024, 64 * 1024);
      const body = page.data.split('\n').map((line) => fit(line, width));
      const read = jobs.readJob(ctx.paths, view.id);
      const status = read.kind === 'ok' ? read.state.status : 'unreadable';
      lines = [bold(fit(`output of ${view.id} (${status}) — esc/backspace back · c cancel · q quit`, width)), '', ...body.slice(-(height - 3))];
    } else {
      const jobsShown = selectable(frame);
      selected = Math.min(selected, Math.max(0, jobsShown.length - 1));
      const confirm = view.kind === 'confirm' ? `cancel job ${view.id}? y/n` : message;
      lines = renderFrame(frame, width, { selected: jobsShown.length > 0 ? selected : undefined, color: true, message: confirm });
    }
    out.write(`${ESC}H${ESC}2J${lines.slice(0, height).join('\r\n')}`);
  };
  const refresh = (): void => {
    frame = buildFrame(ctx);
    watchRunning();
    draw();
  };
  const scheduleRefresh = (): void => {
    pendingDraw ??= setTimeout(() => {
      pendingDraw = undefined;
      refresh();
    }, 50);
  };
  const watchDir = (dir: string): void => {
    if (watchers.has(dir)) return;
    try {
      watchers.set(dir, fs.watch(dir, scheduleRefresh));
    } catch {
      // the tick still refreshes
    }
  };
  const watchRunning = (): void => {
    const wanted = new Set(jobs.queueFolders(ctx.paths, frame.running.map((job) => job.job_id)));
    for (const [dir, watcher] of watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        watchers.delete(dir);
      }
    }
    for (const dir of wanted) watchDir(dir);
  };

  out.write(`${ESC}?1049h${ESC}?25l`);
  const restore = (): void => {
    out.write(`${ESC}?25h${ESC}?1049l`);
    if (input.isTTY) input.setRawMode(false);
  };
  if (input.isTTY) input.setRawMode(true);
  input.resume();
  const tick = setInterval(refresh, 1000);
  const onResize = (): void => draw();
  out.on('resize', onResize);
  refresh();

  await new Promise<void>((resolve) => {
    const quit = (): void => {
      clearInterval(tick);
      clearTimeout(pendingDraw);
      for (const watcher of watchers.values()) watcher.close();
      out.off('resize', onResize);
      input.off('data', onKey);
      input.pause();
      restore();
      resolve();
    };
    const cancelJob = (id: string): void => {
      message = `cancelling ${id}…`;
      draw();
      jobs.cancel(ctx, { job_id: id }).then(
        (answer) => {
          message = answer.result === 'cancelled' ? `${id} cancelled` : `${id}: ${answer.result.replace('_', ' ')}`;
          refresh();
        },
        (error: unknown) => {
          message = `could not cancel ${id}: ${(error as Error).message}`;
          refresh();
        },
      );
    };
    const onKey = (data: Buffer): void => {
      const key = data.toString();
      if (key === 'q' || key === '\x03') return quit();
      const current = selectable(frame)[selected];
      if (view.kind === 'confirm') {
        const id = view.id;
        view = { kind: 'list' };
        if (key === 'y' || key === 'Y') cancelJob(id);
        else message = 'not cancelled';
        return draw();
      }
      if (view.kind === 'output') {
        if (key === '\x1b' || key === '\x7f' || key === '\b' || key === 'h') view = { kind: 'list' };
        else if (key === 'c') view = { kind: 'confirm', id: view.id };
        return draw();
      }
      if (key === '\x1b[A' || key === 'k') selected = Math.max(0, selected - 1);
      else if (key === '\x1b[B' || key === 'j') selected = Math.min(selectable(frame).length - 1, selected + 1);
      else if ((key === '\r' || key === '\n') && current) view = { kind: 'output', id: current.job_id };
      else if (key === 'c' && current) {
        if (isTerminal(current.status as JobState['status'])) message = `${current.job_id} already ended (${current.status})`;
        else view = { kind: 'confirm', id: current.job_id };
      }
      draw();
    };
    input.on('data', onKey);
    process.once('SIGTERM', quit);
  });
}

export function statusCommand(y: Argv): Argv {
  return y.command<Common & { once?: boolean }>(
    'status',
    'live monitor of the runner and the jobs (q quits); --once prints one frame, --json the frame as JSON',
    (cmd) => cmd.option('once', { type: 'boolean', default: false, describe: 'print one frame and exit' }),
    action(async (args) => {
      const ctx = jobs.openContext({ home: args.home });
      // fleet mode: one frame of every host and job of the queue (the live monitor reads a spool)
      if (jobs.isFleet(ctx)) return printFleetStatus(ctx, Boolean(args.json));
      if (args.json) {
        printJson(buildFrame(ctx));
        return EXIT.ok;
      }
      if (args.once || !process.stdout.isTTY || !process.stdin.isTTY) {
        print(renderFrame(buildFrame(ctx), process.stdout.columns || 100, { message: '' }).map((line) => line.trimEnd()).join('\n').trimEnd());
        return EXIT.ok;
      }
      await runMonitor(ctx);
      return EXIT.ok;
    }),
  );
}
