import os from 'node:os';
import { FleetDb, type QueueOptions } from './db.js';
import { QueueListener, type ListenerOptions } from './listen.js';
import { CHANNELS, ensureSchema, type SchemaReport } from './schema.js';

/**
 * A process's handle on the queue: the pool, the one LISTEN connection (made on first use)
 * and the schema check. `open` connects once, so a wrong URL, password or database is
 * reported at once with a clear message, and brings the schema up to date (or refuses a
 * newer one).
 */
export interface OpenOptions extends QueueOptions {
  /** Recorded with migrations this process applies (default: host and pid). */
  appliedBy?: string;
  listener?: ListenerOptions;
}

export class FleetQueue {
  private sharedListener: QueueListener | undefined;

  private constructor(
    readonly db: FleetDb,
    readonly schema: SchemaReport,
    private readonly listenerOptions: ListenerOptions,
  ) {}

  static async open(url: unknown, options: OpenOptions = {}): Promise<FleetQueue> {
    const db = FleetDb.open(url, options);
    try {
      const schema = await ensureSchema(db, options.appliedBy ?? `${os.hostname()} pid ${process.pid}`);
      return new FleetQueue(db, schema, options.listener ?? {});
    } catch (error) {
      await db.close();
      throw error;
    }
  }

  /** The process's LISTEN connection on every channel of the queue (started by the first wait). */
  listener(): QueueListener {
    this.sharedListener ??= new QueueListener(this.db, Object.values(CHANNELS), this.listenerOptions);
    return this.sharedListener;
  }

  /** Closes the listener and the pool; resolves to how many connections were cut (the server did not hang up in time). */
  async close(): Promise<number> {
    const listenerCut = (await this.sharedListener?.close()) ?? 0;
    return listenerCut + (await this.db.close());
  }
}
