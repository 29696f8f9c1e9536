import type { JobError, JobRequest, Usage } from '../spool/state.js';
import type { ActivityReader } from './activity.js';

/** What a supervisor starts for a job: never through a shell. */
export interface Invocation {
  /** argv[0] is looked up on the job's PATH unless it contains a slash. */
  argv: string[];
  /** Written to the worker's stdin, which is then closed; null = stdin is /dev/null. */
  stdin: string | null;
  /** Added to the worker's environment. */
  env: Record<string, string>;
}

export interface InvocationInput {
  request: JobRequest;
  /** The exact prompt (prompt.txt); empty for exec. */
  prompt: string;
  /** Prompts larger than this many bytes go through stdin, never over the argv limit. */
  stdinThreshold: number;
}

/** What an agent CLI's machine-readable stream told us. */
export interface ParsedStream {
  final_message: string | null;
  session_id: string | null;
  /** This invocation's usage (for codex: the thread's running total, see `cumulative`). */
  usage: Usage | null;
  /** True when usage is the whole thread's running total (codex), not this run's own. */
  cumulative: boolean;
  /** The CLI reported that the run failed, with this message. */
  failure: string | null;
  /** The CLI's terminal success event was seen. */
  completed: boolean;
  /** Non-fatal warnings and retries, kept for hints (last few only). */
  notes: string[];
}

export interface StreamParser {
  /** One line of the worker's output (stdout or stderr). */
  line(text: string, stream: 'stdout' | 'stderr'): void;
  result(): ParsedStream;
}

export type Verdict = { ok: true } | { ok: false; error: JobError };

/**
 * One file per worker CLI, all with this shape: build the invocation, parse one line of its
 * machine-readable stream, and decide success from the exit code and the terminal event.
 */
export interface AgentAdapter {
  readonly name: string;
  readonly description: string;
  /** The binary looked up on PATH (or the configured path). */
  readonly binary: string;
  /** How to install the CLI, shown when it is missing. */
  readonly installHint: string;
  /** Whether jobs of this agent take a prompt (all but exec). */
  readonly takesPrompt: boolean;
  /** Whether an ended job's session can be continued (custom agents: only with resume_args). */
  readonly canResume: boolean;
  /** How to log in: the command, and the variable that takes an API key (agent CLIs). */
  readonly loginHint?: string;
  /** What the worker is doing now, from one line of its output (plainActivity when absent). */
  readonly activity?: ActivityReader;
  buildInvocation(input: InvocationInput): Invocation;
  /** A parser for one run; null when the output is not parsed (exec). */
  createParser(): StreamParser | null;
  judge(parsed: ParsedStream, exitCode: number | null, signal: string | null): Verdict;
}

export function emptyParse(): ParsedStream {
  return { final_message: null, session_id: null, usage: null, cumulative: false, failure: null, completed: false, notes: [] };
}

/** Parses a line as a JSON object, or returns undefined for anything else. */
export function jsonLine(text: string): Record<string, unknown> | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(trimmed);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function asString(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

export function asCount(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.round(value) : null;
}

export function asObject(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export function keepNote(notes: string[], note: string): void {
  notes.push(note.length > 500 ? `${note.slice(0, 500)}…` : note);
  if (notes.length > 8) notes.shift();
}

/** The prompt as one argv element, or nothing when it goes through stdin. */
export function promptDelivery(input: InvocationInput): { viaStdin: boolean; stdin: string | null } {
  const viaStdin = Buffer.byteLength(input.prompt) > input.stdinThreshold;
  return { viaStdin, stdin: viaStdin ? input.prompt : null };
}

/** The JSON event on a line, or undefined; a line of stderr that is not JSON is kept as a note. */
export function eventOf(text: string, stream: 'stdout' | 'stderr', notes: string[]): Record<string, unknown> | undefined {
  const event = jsonLine(text);
  if (!event && stream === 'stderr' && text.trim() !== '') keepNote(notes, text.trim());
  return event;
}

/** The text parts of an assistant message event (claude and cursor stream-json), joined. */
export function assistantText(event: Record<string, unknown>): string | null {
  const content = asObject(event.message).content;
  if (!Array.isArray(content)) return null;
  const texts = content.map(asObject).filter((part) => part.type === 'text').map((part) => asString(part.text) ?? '');
  return texts.length > 0 ? texts.join('') : null;
}
