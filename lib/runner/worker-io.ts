import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { openRegularFile } from '../spool/fsx.js';
import type { JobError } from '../spool/state.js';

/**
 * Moving the worker's output to `output.log` (the worker's bytes only), agent-async's own notes
 * about the run to `notes.log`, and the checks made before it starts.
 */

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
/** Longest line handed to a stream parser: a longer one is no event anyone can use, and is dropped. */
export const PARSE_LINE_MAX = 4 * 1024 * 1024;
/**
 * Pipe output read between two minor garbage collections. Each read of a pipe is a fresh 64 KiB
 * buffer whose small wrapper hardly fills V8's young generation, so dead buffers piled up to
 * ~35 MB while 200 MB went through; a minor collection every 2 MiB keeps them to a few MB. The
 * supervisor runs with --expose-gc for it (supervisor-pool.ts); elsewhere this does nothing.
 */
const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * Opens `output.log` for appending (made, mode 0600, when missing) without ever blocking on or
 * writing through something a person or an earlier worker put there: anything but a regular
 * file is refused with `NotARegularFile`.
 */
export function openOutputLog(file: string): number {
  return openRegularFile(file, 'append')!.fd;
}

/**
 * Splits a byte stream into lines without holding more than `maxLine` bytes of an unfinished
 * one: a line's pieces are kept as they came (no text rebuilt per chunk, which made a long line
 * cost its length squared), and a line over the cap is dropped whole however long it grows.
 */
export class LineSplitter {
  private pieces: Buffer[] = [];
  private held = 0;
  private overlong = false;
  /** Lines dropped for being longer than the cap. */
  dropped = 0;

  constructor(private readonly onLine: (line: string) => void, private readonly maxLine = PARSE_LINE_MAX) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      this.keep(chunk.subarray(start, newline));
      this.emit();
      start = newline + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  /** Hands on the unfinished last line, if any. */
  end(): void {
    if (this.held > 0 || this.overlong) this.emit();
  }

  private keep(part: Buffer): void {
    if (this.overlong || part.length === 0) return;
    if (this.held + part.length > this.maxLine) {
      this.overlong = true;
      this.pieces = [];
      this.held = 0;
      // the pieces let go of (up to maxLine) lived long enough to be promoted: only a full
      // collection frees their buffers soon (a supervisor has --expose-gc; elsewhere nothing)
      globalThis.gc?.();
      return;
    }
    this.pieces.push(part);
    this.held += part.length;
  }

  private emit(): void {
    if (this.overlong) {
      this.overlong = false;
      this.dropped += 1;
      return;
    }
    const line = this.pieces.length === 1 ? this.pieces[0]!.toString('utf8') : Buffer.concat(this.pieces, this.held).toString('utf8');
    this.pieces = [];
    this.held = 0;
    this.onLine(line);
  }
}

/**
 * `notes.log`: what agent-async itself has to say about a run (why it stopped the worker, what
 * the worker left running, output it could not keep), one timestamped line each. Opened per
 * note (they are rare), never through anything but a regular file; a note that cannot be
 * written (a full disk) is dropped: the job's end says what matters in state.json.
 */
export class JobNotes {
  constructor(private readonly file: string) {}

  note(text: string): void {
    try {
      const fd = openRegularFile(this.file, 'append')!.fd;
      try {
        fs.writeSync(fd, `${new Date().toISOString()} ${text}\n`);
      } finally {
        closeQuietly(fd);
      }
    } catch {
      // see above
    }
  }
}

/**
 * Writes to output.log that a full disk (or anything else) refuses are counted and dropped,
 * never thrown into a stream handler: the worker's exit status matters more than its output.
 */
class LogWriter {
  lostBytes = 0;
  lastError: Error | null = null;
  bytes = 0;

  constructor(readonly fd: number) {}

  write(data: Buffer): void {
    let offset = 0;
    try {
      while (offset < data.length) offset += fs.writeSync(this.fd, data, offset);
    } catch (error) {
      this.lostBytes += data.length - offset;
      this.lastError = error as Error;
    }
    this.bytes += offset;
  }

  /** Says in the notes how much output was lost. */
  reportLoss(notes: JobNotes): void {
    if (this.lostBytes > 0) notes.note(`${this.lostBytes} bytes of output were lost: ${this.lastError?.message ?? 'write failed'}`);
  }
}

/**
 * Appends the worker's stdout and stderr to `output.log` line by line (so the two streams
 * never split each other's lines), never holding more than one partial line per stream.
 * Complete lines of both streams also go to `onLine` (agent stream parsers).
 */
export class OutputSink {
  private readonly log: LogWriter;
  private readonly partial = new Map<Readable, Buffer>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly splitters = new Map<Readable, LineSplitter>();
  private readSinceCollect = 0;
  lastOutputAt = Date.now();

  constructor(fd: number, private readonly notes: JobNotes, private readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void) {
    this.log = new LogWriter(fd);
  }

  get bytes(): number {
    return this.log.bytes;
  }

  /** Output that could not be written (a full disk), with why. */
  get lost(): { bytes: number; error: Error | null } {
    return { bytes: this.log.lostBytes, error: this.log.lastError };
  }

  attach(stream: Readable, isStdout: boolean): Promise<void> {
    if (this.onLine) {
      const name = isStdout ? 'stdout' : 'stderr';
      this.splitters.set(stream, new LineSplitter((line) => {
        if (line.trim() !== '') this.onLine?.(line, name);
      }));
    }
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => this.accept(stream, chunk));
      const end = (): void => {
        this.flushPartial(stream);
        resolve();
      };
      stream.once('end', end);
      stream.once('error', end);
      stream.once('close', end);
    });
  }

  private accept(stream: Readable, chunk: Buffer): void {
    this.lastOutputAt = Date.now();
    this.readSinceCollect += chunk.length;
    if (this.readSinceCollect >= COLLECT_EVERY_BYTES) {
      this.readSinceCollect = 0;
      globalThis.gc?.({ type: 'minor' });
    }
    this.splitters.get(stream)?.push(chunk);
    const pending = this.partial.get(stream);
    const lastNewline = chunk.lastIndexOf(0x0a);
    if (lastNewline === -1 && (pending?.length ?? 0) + chunk.length < MAX_LINE_BUFFER) {
      this.partial.set(stream, pending ? Buffer.concat([pending, chunk]) : chunk);
      this.scheduleFlush();
      return;
    }
    // Written without joining the held part and the chunk first (a long line would copy
    // every chunk once more); both writes happen in this one call, so no line of the other
    // stream can come between them.
    if (pending) this.log.write(pending);
    const cut = lastNewline === -1 ? chunk.length : lastNewline + 1;
    this.log.write(chunk.subarray(0, cut));
    if (cut < chunk.length) {
      this.partial.set(stream, chunk.subarray(cut));
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
    this.log.write(pending);
  }

  /** Flushes what is held, hands the parser the last unfinished lines, and closes the log. */
  close(): void {
    clearTimeout(this.flushTimer);
    for (const stream of [...this.partial.keys()]) this.flushPartial(stream);
    for (const splitter of this.splitters.values()) splitter.end();
    const dropped = [...this.splitters.values()].reduce((sum, splitter) => sum + splitter.dropped, 0);
    if (dropped > 0) this.notes.note(`${dropped} line(s) longer than ${PARSE_LINE_MAX} bytes were kept in output.log but not parsed`);
    this.splitters.clear();
    this.log.reportLoss(this.notes);
    closeQuietly(this.log.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}

/**
 * Output of a worker whose stream nobody parses (exec): its stdout and stderr go straight to
 * `output.log` through one O_APPEND descriptor, with no pipe in between (cheaper to start,
 * and the output keeps flowing even if the supervisor dies). Silence is seen from the size.
 */
export class DirectOutput {
  private readonly log: LogWriter;
  private size = 0;
  private changedAt = Date.now();

  constructor(readonly fd: number, private readonly notes: JobNotes) {
    this.log = new LogWriter(fd);
  }

  get lastOutputAt(): number {
    const size = fs.fstatSync(this.fd).size;
    if (size !== this.size) {
      this.size = size;
      this.changedAt = Date.now();
    }
    return this.changedAt;
  }

  get lost(): { bytes: number; error: Error | null } {
    return { bytes: this.log.lostBytes, error: this.log.lastError };
  }

  close(): void {
    this.log.reportLoss(this.notes);
    closeQuietly(this.fd);
  }
}
