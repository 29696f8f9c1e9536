import { changesOf, type JobState } from '../jobs.js';
import type { JobSnapshot } from '../jobs.js';

/** Human-readable renderings for the CLI (the `--json` output is the data itself). */

const SAFE_ARG = /^[\w@%+=:,./-]+$/;

export function shellQuote(arg: string): string {
  if (arg !== '' && SAFE_ARG.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function describeCommand(state: JobState): string {
  const { request } = state;
  if (request.argv) return request.argv.map(shellQuote).join(' ');
  const parts = [request.agent, request.policy ?? ''];
  if (request.model) parts.push(request.model);
  if (request.template) parts.push(`(${request.template})`);
  if (request.continue_of) parts.push(`continues ${request.continue_of}`);
  return parts.filter(Boolean).join(' ');
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  return `${hours}h${String(minutes % 60).padStart(2, '0')}m`;
}

export function formatAge(iso: string, now = Date.now()): string {
  const ms = Math.max(0, now - Date.parse(iso));
  if (ms < 60_000) return `${Math.floor(ms / 1000)}s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ago`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h ago`;
  return `${Math.floor(ms / 86_400_000)}d ago`;
}

function elapsed(state: JobState, now = Date.now()): number | null {
  if (state.duration_ms !== null) return state.duration_ms;
  if (state.started_at) return now - Date.parse(state.started_at);
  return null;
}

export function outcomeText(state: JobState): string {
  switch (state.status) {
    case 'done':
      return state.notified ? `done: ${firstLine(state.notified.summary) || '(no summary)'}` : `done (exit ${state.exit_code ?? '?'})`;
    case 'error':
      return `error ${state.error?.code ?? ''}: ${state.error?.message ?? ''}`.trim();
    case 'cancelled':
      return 'cancelled';
    case 'running':
      return `running for ${formatDuration(elapsed(state))}`;
    case 'pending':
      return `pending since ${formatAge(state.created_at)}`;
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? '';
}

export function formatUsage(usage: NonNullable<JobState['usage']>): string {
  const parts = [`${usage.input_tokens ?? '?'} in`, `${usage.output_tokens ?? '?'} out`];
  if (usage.cached_input_tokens) parts.push(`${usage.cached_input_tokens} cached`);
  if (usage.cost_usd !== null) parts.push(`$${usage.cost_usd.toFixed(4)}`);
  return parts.join(', ');
}

export function statusLine(snap: JobSnapshot): string {
  if (snap.kind === 'missing') return `${snap.id}  missing`;
  if (snap.kind === 'corrupt') return `${snap.id}  unreadable: ${snap.reason}`;
  return `${snap.id}  ${outcomeText(snap.state)}`;
}

export function stateDetails(state: JobState): string {
  const rows: Array<[string, string | null]> = [
    ['id', state.id],
    ['status', state.status],
    ['agent', state.request.agent],
    ['command', describeCommand(state)],
    ['cwd', state.request.cwd],
    ['created', `${state.created_at} (${formatAge(state.created_at)})`],
    ['started', state.started_at],
    ['finished', state.finished_at],
    ['duration', state.started_at ? formatDuration(elapsed(state)) : null],
    ['attempt', state.attempt > 0 ? String(state.attempt) : null],
    ['worker pid', state.worker ? String(state.worker.pid) : null],
    ['exit code', state.exit_code === null ? null : String(state.exit_code)],
    ['signal', state.signal],
    ['error', state.error ? `${state.error.code}: ${state.error.message}` : null],
    ['hint', state.error?.hint ?? null],
    ['summary', state.notified ? state.notified.summary : null],
    ['session', state.session_id],
    ['usage', state.usage ? formatUsage(state.usage) : null],
    ['answer', state.result?.final_message ? firstLine(state.result.final_message) : null],
    ['retry of', state.request.retry_of],
    ['continues', state.request.continue_of],
    ['isolation', state.request.isolation === 'worktree' ? `worktree from ${state.request.worktree?.from === 'ref' ? state.request.worktree.ref : 'the work tree'} (${state.request.worktree?.base_commit.slice(0, 12) ?? '?'})` : null],
    ['branch', worktreeLabel(state)],
    ['applied', changesOf(state)?.applied ? `${changesOf(state)!.applied!.at} into ${changesOf(state)!.applied!.into}` : changesOf(state)?.apply_error ?? null],
    ['discarded', changesOf(state)?.discarded_at ?? null],
  ];
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows
    .filter(([, value]) => value !== null && value !== '')
    .map(([key, value]) => `${key.padEnd(width)}  ${value}`)
    .join('\n');
}

export interface Column {
  title: string;
  /** Takes what is left of the width when the table is too wide. */
  flexible?: boolean;
}

/** A plain-text table fitted to `width` (only the flexible column is cut). */
export function table(columns: Column[], rows: string[][], width: number | undefined): string {
  const widths = columns.map((col, i) => Math.max(col.title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const total = widths.reduce((sum, w) => sum + w, 0) + 2 * (columns.length - 1);
  const flexIndex = columns.findIndex((col) => col.flexible);
  if (width !== undefined && total > width && flexIndex >= 0) {
    widths[flexIndex] = Math.max(columns[flexIndex]!.title.length, widths[flexIndex]! - (total - width));
  }
  const fit = (text: string, w: number, last: boolean): string => {
    const cut = text.length > w ? `${text.slice(0, Math.max(0, w - 1))}…` : text;
    return last ? cut : cut.padEnd(w);
  };
  const line = (cells: string[]): string =>
    cells.map((cell, i) => fit(cell, widths[i]!, i === cells.length - 1)).join('  ').trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join('\n');
}

/** An isolated job's branch and how many files it changed (`agent-async/<id>, 3 files`); null without isolation. */
export function worktreeLabel(state: JobState): string | null {
  if (state.request.isolation !== 'worktree') return null;
  const branch = `agent-async/${state.request.worktree?.id ?? state.id}`;
  const changes = changesOf(state);
  if (!changes) return branch;
  const count = `${changes.files.length} file${changes.files.length === 1 ? '' : 's'}`;
  return `${branch}, ${count}${changes.applied ? ', applied' : changes.discarded_at ? ', discarded' : ''}`;
}

export function jobRows(snaps: JobSnapshot[], now = Date.now()): string[][] {
  return snaps.map((snap) => {
    if (snap.kind !== 'ok') return [snap.id, snap.kind === 'corrupt' ? 'UNREADABLE' : 'missing', '-', '-', '-', snap.kind === 'corrupt' ? snap.reason : ''];
    const s = snap.state;
    const detail = s.status === 'error' && s.error ? `[${s.error.code}] ${describeCommand(s)}` : describeCommand(s);
    const branch = worktreeLabel(s);
    return [s.id, s.status, s.request.agent, formatAge(s.created_at, now), formatDuration(elapsed(s, now)), `${s.request.cwd}${branch ? ` [${branch}]` : ''}  ${detail}`];
  });
}

export const JOB_COLUMNS: Column[] = [
  { title: 'ID' },
  { title: 'STATUS' },
  { title: 'AGENT' },
  { title: 'CREATED' },
  { title: 'TIME' },
  { title: 'CWD / COMMAND', flexible: true },
];
