import type pg from 'pg';
import type { FleetDb } from './db.js';

/**
 * One dedicated LISTEN connection per process (a pooled one would be handed to other work and
 * lose its LISTEN). Notifications sent while it is disconnected are lost, so on every
 * (re)connect it LISTENs first and then tells every subscriber to re-read ("resync"): the order
 * closes the gap between reading and listening. It reconnects for ever with back-off (at once
 * after a drop, then 100 ms doubling to 5 s, with jitter) and pings its connection, so a
 * connection that died silently is noticed too. A payload is only a hint: subscribers re-read.
 */
export type NotificationHandler = (channel: string, payload: string) => void;

export interface ListenerOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A ping on the LISTEN connection this often notices a connection that died silently. */
  pingMs?: number;
}

export class QueueListener {
  /** The connection once its LISTENs are in place. */
  private client: pg.Client | undefined;
  /** The connection from the moment it is made, LISTENs in flight or not: what close ends. */
  private connection: pg.Client | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  private readonly handlers = new Set<NotificationHandler>();
  private readonly resyncHandlers = new Set<() => void>();
  private readyWaiters: Array<() => void> = [];
  /** Ends the back-off pause at once (on close). */
  private cutPause: (() => void) | undefined;
  /** Counters for `doctor` and tests. */
  readonly stats = { connects: 0, notifications: 0, failures: 0 };

  constructor(
    private readonly db: FleetDb,
    private readonly channels: readonly string[],
    private readonly options: ListenerOptions = {},
  ) {
    for (const channel of channels) if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
  }

  get listening(): boolean {
    return this.client !== undefined;
  }

  onNotification(handler: NotificationHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Called after every (re)connect, once LISTEN is in place: re-read what you wait for. */
  onResync(handler: () => void): () => void {
    this.resyncHandlers.add(handler);
    return () => this.resyncHandlers.delete(handler);
  }

  /** Starts the connection loop (once); resolves true when listening, false after `timeoutMs` without. */
  async armed(timeoutMs: number): Promise<boolean> {
    this.running ??= this.run();
    if (this.listening) return true;
    if (this.closed) return false;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private dispatch(message: pg.Notification): void {
    this.stats.notifications += 1;
    for (const handler of [...this.handlers]) handler(message.channel, message.payload ?? '');
  }

  private async listenOnce(): Promise<void> {
    const client = await this.db.connectClient('listen', { statement_timeout: 0, query_timeout: 10_000 });
    this.connection = client;
    const ended = new Promise<void>((resolve) => {
      client.once('end', resolve);
      client.once('error', () => resolve());
    });
    let ping: NodeJS.Timeout | undefined;
    try {
      // closed while connecting; a close from here on ends the connection itself (and any LISTEN in flight)
      if (this.closed) return;
      client.on('notification', (message) => this.dispatch(message));
      for (const channel of this.channels) await client.query(`LISTEN ${channel}`);
      this.client = client;
      this.stats.connects += 1;
      for (const ready of this.readyWaiters.splice(0)) ready();
      for (const resync of [...this.resyncHandlers]) resync();
      ping = setInterval(() => {
        client.query('SELECT 1').catch(() => void this.db.end(client));
      }, this.options.pingMs ?? 15_000);
      await ended;
    } finally {
      clearInterval(ping);
      this.client = undefined;
      this.connection = undefined;
      await this.db.end(client);
    }
  }

  private async run(): Promise<void> {
    const min = this.options.minBackoffMs ?? 100;
    const max = this.options.maxBackoffMs ?? 5_000;
    let backoff = 0;
    while (!this.closed) {
      const connectsBefore = this.stats.connects;
      try {
        await this.listenOnce();
      } catch (error) {
        this.stats.failures += 1;
        this.db.log(`listener: ${(error as Error).message}`);
      }
      if (this.closed) break;
      // at once after a connection that worked, then back off while the server is away
      backoff = this.stats.connects > connectsBefore ? 0 : Math.min(max, Math.max(min, backoff * 2));
      if (backoff > 0) await this.pause(backoff * (0.75 + Math.random() * 0.5));
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.cutPause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Stops listening and ends the connection; resolves to 1 when the server did not hang up in time and it was cut. */
  async close(): Promise<number> {
    this.closed = true;
    this.cutPause?.();
    for (const ready of this.readyWaiters.splice(0)) ready();
    // not only `client`: a connection still sending its LISTENs would otherwise go on to wait
    // for an end nobody asks for, and this close (and the process) with it
    const cut = this.connection ? await this.db.end(this.connection) : false;
    await this.running;
    return cut ? 1 : 0;
  }
}
