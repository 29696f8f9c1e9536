import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { IllegalTransition, isTerminal, type Transition } from '../spool/state.js';
import { readJsonFile, removeQuietly, writeJsonAtomic } from '../spool/fsx.js';
import { DIR_MODE } from '../spool/layout.js';
import type { Sql } from './db.js';
import { LeaseLost, isConnectionFailure } from './errors.js';
import { appendOutput, outputSize, OUTPUT_PAGE_BYTES } from './output.js';
import { getJob, transitionJob } from './queue.js';

/**
 * The write-ahead buffer of a host: what its jobs did that the queue must learn, recorded in
 * the local spool first (one small JSON file per entry, atomically written and fsynced) and
 * delivered in order when the database answers. A job that ends while the database is
 * unreachable therefore loses nothing: its end waits here, its output waits in its local
 * output.log, and both are delivered when the connection is back (output first, so a job
 * that ended `done` never lacks a page).
 *
 * Delivery is idempotent (an entry whose change the queue already has is dropped as
 * delivered) and fenced: when the lease was taken over meanwhile the queue's decision
 * (`runner_lost`) stands; the entry moves to `rejected/` with the reason, as evidence.
 */
const entrySchema = z.object({
  schema_version: z.literal(1),
  job_id: z.string().regex(/^[0-9a-z]{23}$/),
  host: z.string(),
  epoch: z.number().int().nonnegative(),
  /** When it happened (the transition is applied with this time). */
  at: z.string(),
  change: z.custom<Transition>((value) => typeof value === 'object' && value !== null && typeof (value as { name?: unknown }).name === 'string'),
  /** Bytes of output the job had locally when this was recorded: delivered before the change. */
  output_bytes: z.number().int().nonnegative().nullable(),
});
export type OutboxEntry = z.infer<typeof entrySchema>;

/** Reads `length` bytes of a job's local output from `offset` (its output.log). */
export type OutputSource = (jobId: string, offset: number, length: number) => Buffer;

export interface DeliveryReport {
  delivered: string[];
  /** Entries whose change the queue had already (a write whose commit went unseen). */
  already: string[];
  rejected: Array<{ file: string; reason: string }>;
  /** Entries still waiting (the queue went away again). */
  remaining: number;
  error: string | null;
}

const ENTRY_NAME = /^[0-9a-z]{11}-[0-9]{10}-[0-9]{6}-[0-9a-z]{23}\.json$/;
const DELIVERY_CHUNK = OUTPUT_PAGE_BYTES * 16;

let counter = 0;
let lastStamp = 0;

export class Outbox {
  readonly rejectedDir: string;

  constructor(readonly dir: string) {
    this.rejectedDir = path.join(dir, 'rejected');
  }

  private ensure(): void {
    fs.mkdirSync(this.rejectedDir, { recursive: true, mode: DIR_MODE });
  }

  /** Records an entry durably; returns its file. Entries sort by the time they were recorded. */
  record(entry: Omit<OutboxEntry, 'schema_version'>): string {
    this.ensure();
    counter = (counter + 1) % 1_000_000;
    lastStamp = Math.max(Date.now(), lastStamp); // a clock stepped back must not reorder one job's entries
    const name = `${lastStamp.toString(36).padStart(11, '0')}-${String(process.pid).padStart(10, '0')}-${String(counter).padStart(6, '0')}-${entry.job_id}.json`;
    const file = path.join(this.dir, name);
    writeJsonAtomic(file, entrySchema.parse({ schema_version: 1, ...entry }), 'folder');
    return file;
  }

  /** Entry files waiting for delivery, oldest first. */
  pending(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((name) => ENTRY_NAME.test(name)).sort().map((name) => path.join(this.dir, name));
  }

  private reject(file: string, reason: string): void {
    this.ensure();
    const target = path.join(this.rejectedDir, path.basename(file));
    const read = readJsonFile<Record<string, unknown>>(file);
    writeJsonAtomic(target, { ...(read.kind === 'ok' ? read.value : { unreadable: true }), rejected: { reason, at: new Date().toISOString() } }, 'folder');
    removeQuietly(file);
  }

  /**
   * Delivers every waiting entry in order. Stops at the first connection failure (the rest
   * waits for the next call); other failures reject that entry and go on.
   */
  async deliver(sql: Sql, outputSource?: OutputSource): Promise<DeliveryReport> {
    const report: DeliveryReport = { delivered: [], already: [], rejected: [], remaining: 0, error: null };
    const files = this.pending();
    for (const [index, file] of files.entries()) {
      const read = readJsonFile(file);
      const parsed = read.kind === 'ok' ? entrySchema.safeParse(read.value) : undefined;
      if (!parsed?.success) {
        if (read.kind === 'missing') continue; // delivered by another process meanwhile
        this.reject(file, 'unreadable entry');
        report.rejected.push({ file, reason: 'unreadable entry' });
        continue;
      }
      try {
        const outcome = await deliverEntry(sql, parsed.data, outputSource);
        removeQuietly(file);
        report[outcome].push(file);
      } catch (error) {
        if (isConnectionFailure(error)) {
          report.remaining = files.length - index;
          report.error = (error as Error).message;
          return report;
        }
        const reason = error instanceof LeaseLost ? `fenced: ${error.message}` : (error as Error).message;
        this.reject(file, reason);
        report.rejected.push({ file, reason });
      }
    }
    return report;
  }
}

async function deliverOutput(sql: Sql, entry: OutboxEntry, outputSource: OutputSource): Promise<void> {
  const target = entry.output_bytes ?? 0;
  let stored = await outputSize(sql, entry.job_id);
  while (stored < target) {
    const chunk = outputSource(entry.job_id, stored, Math.min(DELIVERY_CHUNK, target - stored));
    if (chunk.length === 0) break; // the local file is shorter than recorded: deliver what there is
    stored = await appendOutput(sql, entry.job_id, entry.epoch, stored, chunk);
  }
}

async function deliverEntry(sql: Sql, entry: OutboxEntry, outputSource: OutputSource | undefined): Promise<'delivered' | 'already'> {
  const current = await getJob(sql, entry.job_id);
  if (!current) throw new Error(`job ${entry.job_id} is not in the queue`);
  if (current.leaseEpoch !== entry.epoch) {
    throw new LeaseLost(entry.host, entry.epoch, `job ${entry.job_id} is held by epoch ${current.leaseEpoch ?? 'none'} now (${current.state.status})`);
  }
  if (outputSource && entry.output_bytes !== null) await deliverOutput(sql, entry, outputSource);
  try {
    await transitionJob(sql, entry.job_id, { epoch: entry.epoch, change: entry.change, at: new Date(entry.at), current });
    return 'delivered';
  } catch (error) {
    // the queue has it already: our earlier write committed though we never saw the answer
    if (error instanceof IllegalTransition && isTerminal(current.state.status)) return 'already';
    throw error;
  }
}
