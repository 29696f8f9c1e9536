import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { openRegularFile } from '../spool/fsx.js';
import type { JobError } from '../spool/state.js';
import { PIPE_READ_BYTES, readPipe, type PipeReading } from './worker/pipe.js';

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

/** Most bytes of an unfinished line held back from output.log; at least one read of a pipe (see accept). */
const MAX_LINE_BUFFER = PIPE_READ_BYTES;
const PARTIAL_FLUSH_MS = 200;
/** Longest line handed to a stream parser: a longer one is no event anyone can use, and is dropped. */
export const PARSE_LINE_MAX = 4 * 1024 * 1024;

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
 * The chunks pushed may be views of a buffer the caller reuses: what is kept is copied.
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
      this.endLine(chunk.subarray(start, newline));
      start = newline + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  /** Hands on the unfinished last line, if any. */
  end(): void {
    if (this.held > 0 || this.overlong) this.endLine(Buffer.alloc(0));
  }

  private keep(part: Buffer): void {
    if (!this.fits(part)) return;
    this.pieces.push(Buffer.from(part));
    this.held += part.length;
  }

  /** Whether the line still fits with `part`; when it first does not, lets go of what it held. */
  private fits(part: Buffer): boolean {
    if (this.overlong) return false;
    if (this.held + part.length <= this.maxLine) return true;
    this.overlong = true;
    this.pieces = [];
    this.held = 0;
    // the pieces let go of (up to maxLine) lived long enough to be promoted: only a full
    // collection frees their buffers soon (a supervisor has --expose-gc; elsewhere nothing)
    globalThis.gc?.();
    return false;
  }

  private endLine(last: Buffer): void {
    if (!this.fits(last)) {
      this.overlong = false;
      this.dropped += 1;
      return;
    }
    const line = this.held === 0 ? last.toString('utf8') : Buffer.concat([...this.pieces, last], this.held + last.length).toString('utf8');
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

type StreamName = 'stdout' | 'stderr';

/** The unfinished last line of a stream, held back from output.log in a buffer of its own (a pipe's read buffer is reused). */
class HeldLine {
  private readonly buffer = Buffer.alloc(MAX_LINE_BUFFER);
  length = 0;

  add(part: Buffer): void {
    this.length += part.copy(this.buffer, this.length);
  }

  /** Empties it; the bytes it returns are valid until the next `add`. */
  take(): Buffer {
    const held = this.buffer.subarray(0, this.length);
    this.length = 0;
    return held;
  }
}

interface StreamOutput {
  held: HeldLine;
  splitter: LineSplitter | undefined;
}

/**
 * Appends the worker's stdout and stderr to `output.log` line by line (so the two streams
 * never split each other's lines), never holding more than one partial line per stream.
 * Complete lines of both streams also go to `onLine` (agent stream parsers). A read costs no
 * allocation: each pipe is read into one reused buffer (readPipe), only held bytes are copied.
 */
export class OutputSink {
  private readonly log: LogWriter;
  private readonly streams: StreamOutput[] = [];
  private readonly pipes: PipeReading[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  lastOutputAt = Date.now();

  constructor(fd: number, private readonly notes: JobNotes, private readonly onLine?: (line: string, stream: StreamName) => void) {
    this.log = new LogWriter(fd);
  }

  get bytes(): number {
    return this.log.bytes;
  }

  /** Output that could not be written (a full disk), with why. */
  get lost(): { bytes: number; error: Error | null } {
    return { bytes: this.log.lostBytes, error: this.log.lastError };
  }

  /** Reads the worker's stdout and stderr; call it right after the spawn (see readPipe). Resolves once both have ended. */
  async attach(child: ChildProcess): Promise<void> {
    await Promise.all([this.read(child.stdout, 'stdout'), this.read(child.stderr, 'stderr')]);
  }

  private async read(stream: Readable | null, name: StreamName): Promise<void> {
    const output: StreamOutput = { held: new HeldLine(), splitter: this.splitter(name) };
    this.streams.push(output);
    const pipe = readPipe(stream, (chunk) => this.accept(output, chunk));
    this.pipes.push(pipe);
    await pipe.done;
    this.flushHeld(output);
  }

  private splitter(name: StreamName): LineSplitter | undefined {
    const onLine = this.onLine;
    if (!onLine) return undefined;
    return new LineSplitter((line) => {
      if (line.trim() !== '') onLine(line, name);
    });
  }

  private accept(output: StreamOutput, chunk: Buffer): void {
    this.lastOutputAt = Date.now();
    output.splitter?.push(chunk);
    const { held } = output;
    const lastNewline = chunk.lastIndexOf(0x0a);
    if (lastNewline === -1 && held.length + chunk.length < MAX_LINE_BUFFER) {
      held.add(chunk);
      this.scheduleFlush();
      return;
    }
    // Written without joining the held part and the chunk first (a long line would copy
    // every chunk once more); both writes happen in this one call, so no line of the other
    // stream can come between them.
    if (held.length > 0) this.log.write(held.take());
    const cut = lastNewline === -1 ? chunk.length : lastNewline + 1;
    this.log.write(chunk.subarray(0, cut));
    // what is left is shorter than one read, so it fits
    if (cut < chunk.length) {
      held.add(chunk.subarray(cut));
      this.scheduleFlush();
    }
  }

  private scheduleFlush(): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      for (const output of this.streams) this.flushHeld(output);
    }, PARTIAL_FLUSH_MS);
  }

  private flushHeld(output: StreamOutput): void {
    if (output.held.length > 0) this.log.write(output.held.take());
  }

  /**
   * Stops reading the pipes (a grandchild may still hold them open), flushes what is held,
   * hands the parser the last unfinished lines, and closes the log.
   */
  close(): void {
    for (const pipe of this.pipes) pipe.close();
    clearTimeout(this.flushTimer);
    for (const output of this.streams) this.flushHeld(output);
    const splitters = this.streams.flatMap((output) => (output.splitter ? [output.splitter] : []));
    for (const splitter of splitters) splitter.end();
    const dropped = splitters.reduce((sum, splitter) => sum + splitter.dropped, 0);
    if (dropped > 0) this.notes.note(`${dropped} line(s) longer than ${PARSE_LINE_MAX} bytes were kept in output.log but not parsed`);
    this.streams.length = 0;
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
