import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { JobError } from '../spool/state.js';

/** Starts the lines agent-async itself writes into output.log (why a job was stopped, …). */
export const NOTE_PREFIX = '[agent-async] ';

/** Moving the worker's output to `output.log`, and the checks made before it starts. */

export function checkCwd(cwd: string): JobError | null {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(cwd);
  } catch {
    return { code: 'cwd_missing', message: `the job's cwd ${cwd} no longer exists` };
  }
  if (!stat.isDirectory()) return { code: 'cwd_missing', message: `the job's cwd ${cwd} is not a directory` };
  return null;
}

const MAX_LINE_BUFFER = 64 * 1024;
const PARTIAL_FLUSH_MS = 200;

/**
 * Appends the worker's stdout and stderr to `output.log` line by line (so the two streams
 * never split each other's lines), never holding more than one partial line per stream.
 * Complete lines of both streams also go to `onLine` (agent stream parsers).
 */
export class OutputSink {
  private readonly fd: number;
  private readonly partial = new Map<Readable, Buffer>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly lineParts = new Map<Readable, { decoder: StringDecoder; rest: string }>();
  lastOutputAt = Date.now();
  bytes = 0;

  constructor(file: string, private readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void) {
    this.fd = fs.openSync(file, 'a', 0o600);
  }

  private stdout: Readable | undefined;

  attach(stream: Readable, isStdout: boolean): Promise<void> {
    if (isStdout) this.stdout = stream;
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => this.accept(stream, chunk, isStdout));
      const end = (): void => {
        this.flushPartial(stream);
        resolve();
      };
      stream.once('end', end);
      stream.once('error', end);
      stream.once('close', end);
    });
  }

  private accept(stream: Readable, chunk: Buffer, isStdout: boolean): void {
    this.lastOutputAt = Date.now();
    if (this.onLine) this.parse(stream, chunk, isStdout ? 'stdout' : 'stderr');
    const pending = this.partial.get(stream);
    const data = pending ? Buffer.concat([pending, chunk]) : chunk;
    const lastNewline = data.lastIndexOf(0x0a);
    if (lastNewline === -1 && data.length < MAX_LINE_BUFFER) {
      this.partial.set(stream, data);
      this.scheduleFlush();
      return;
    }
    const cut = lastNewline === -1 ? data.length : lastNewline + 1;
    this.write(data.subarray(0, cut));
    if (cut < data.length) {
      this.partial.set(stream, data.subarray(cut));
      this.scheduleFlush();
    } else {
      this.partial.delete(stream);
    }
  }

  private scheduleFlush(): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      for (const stream of [...this.partial.keys()]) this.flushPartial(stream);
    }, PARTIAL_FLUSH_MS);
  }

  private flushPartial(stream: Readable): void {
    const pending = this.partial.get(stream);
    if (!pending) return;
    this.partial.delete(stream);
    this.write(pending);
  }

  private parse(stream: Readable, chunk: Buffer, name: 'stdout' | 'stderr'): void {
    let parts = this.lineParts.get(stream);
    if (!parts) {
      parts = { decoder: new StringDecoder('utf8'), rest: '' };
      this.lineParts.set(stream, parts);
    }
    const lines = (parts.rest + parts.decoder.write(chunk)).split('\n');
    parts.rest = lines.pop() ?? '';
    // a line longer than this is not a stream event anyone can use; drop it rather than grow
    if (parts.rest.length > MAX_LINE_BUFFER * 64) parts.rest = '';
    for (const line of lines) if (line.trim() !== '') this.onLine?.(line, name);
  }

  private write(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) offset += fs.writeSync(this.fd, data, offset);
    this.bytes += data.length;
  }

  /** Writes a line of our own (e.g. why the job was stopped) into the log. */
  note(text: string): void {
    this.write(Buffer.from(`${NOTE_PREFIX}${text}\n`));
  }

  close(): void {
    clearTimeout(this.flushTimer);
    for (const stream of [...this.partial.keys()]) this.flushPartial(stream);
    for (const [stream, parts] of this.lineParts) {
      const last = parts.rest + parts.decoder.end();
      if (last.trim() !== '') this.onLine?.(last, stream === this.stdout ? 'stdout' : 'stderr');
    }
    this.lineParts.clear();
    fs.closeSync(this.fd);
  }
}

/**
 * Output of a worker whose stream nobody parses (exec): its stdout and stderr go straight to
 * `output.log` through one O_APPEND descriptor, with no pipe in between (cheaper to start,
 * and the output keeps flowing even if the supervisor dies). Silence is seen from the size.
 */
export class DirectOutput {
  readonly fd: number;
  private size = 0;
  private changedAt = Date.now();

  constructor(file: string) {
    this.fd = fs.openSync(file, 'a', 0o600);
  }

  get lastOutputAt(): number {
    const size = fs.fstatSync(this.fd).size;
    if (size !== this.size) {
      this.size = size;
      this.changedAt = Date.now();
    }
    return this.changedAt;
  }

  note(text: string): void {
    fs.writeSync(this.fd, `${NOTE_PREFIX}${text}\n`);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
