import pg from 'pg';
import pgPass from 'pgpass';
import { describeQueueError, isConnectionFailure, type ErrorContext } from './errors.js';
import { parseQueueUrl, redact, type QueueTarget } from './url.js';

/**
 * The connection to the queue: one pool per process for short statements, dedicated clients
 * for LISTEN. Every pool and client has an 'error' handler (an unhandled one ends the process
 * when the server restarts), every query a client-side timeout (the only thing that unblocks
 * a caller when packets stop flowing), and the server is asked for statement, lock and
 * idle-in-transaction timeouts so a vanished client never holds locks for long.
 *
 * The password is taken, in this order, from the URL, PGPASSWORD, or PGPASSFILE / ~/.pgpass
 * (looked up at each connect, so a rotated password is picked up). It is never logged.
 */
export interface QueueOptions {
  /** Shown in pg_stat_activity as `agent-async <role>` (a runner, a waiter, the CLI). */
  role?: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  /** Where connection trouble is reported (already redacted); silent by default. */
  log?: (message: string) => void;
}

export const DEFAULT_TIMEOUTS = {
  connectMs: 5_000,
  /** A goodbye (Terminate) waits this long for the server to hang up, then the socket is cut. */
  goodbyeMs: 5_000,
  queryMs: 30_000,
  statementMs: 20_000,
  lockMs: 10_000,
  idleInTransactionMs: 60_000,
};

/** Anything that runs a statement: the pool (through FleetDb) or one client inside a transaction. */
export interface Sql {
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<Row>>;
}

export class FleetDb implements Sql {
  readonly pool: pg.Pool;
  private passwordSource = 'nowhere (no password in the URL, PGPASSWORD, PGPASSFILE or ~/.pgpass)';
  private closed = false;
  /** Every connection made and not yet ended (pooled and dedicated), with its end. */
  private readonly live = new Map<pg.Client, Promise<void>>();
  /** The pool's among them. */
  private readonly pooled = new Set<pg.Client>();

  private constructor(
    readonly target: QueueTarget,
    private readonly options: QueueOptions,
  ) {
    // the pool applies connectionTimeoutMillis to waiting for a free connection too: a burst of
    // calls may wait as long as a query may take, while each connect keeps its own short limit
    const connectMs = options.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs;
    class QuickConnectClient extends pg.Client {
      constructor(config?: string | pg.ClientConfig) {
        const settings = config as pg.ClientConfig;
        // the pool keeps `password` non-enumerable (out of logs), so a spread would drop it
        super({ ...settings, password: settings.password, connectionTimeoutMillis: connectMs });
      }
    }
    this.pool = new pg.Pool({
      ...this.clientConfig(options.role ?? 'client'),
      connectionTimeoutMillis: Math.max(connectMs, options.queryTimeoutMs ?? DEFAULT_TIMEOUTS.queryMs),
      Client: QuickConnectClient,
      max: options.poolSize ?? 4,
      idleTimeoutMillis: 30_000,
    });
    this.pool.on('error', (error) => this.log(`idle queue connection failed: ${error.message}`));
    this.pool.on('connect', (client) => {
      this.pooled.add(client);
      this.track(client);
    });
  }

  private track(client: pg.Client): void {
    this.live.set(client, new Promise((resolve) => client.once('end', () => {
      this.live.delete(client);
      this.pooled.delete(client);
      resolve();
    })));
  }

  /**
   * Waits for connections to end (after their goodbye), up to DEFAULT_TIMEOUTS.goodbyeMs, and
   * cuts the sockets of those still open then: a server that stopped answering (paused, cut
   * off) never hangs up, and the goodbye of node-postgres waits for that. Returns how many it cut.
   */
  private async cutLate(clients: readonly pg.Client[]): Promise<number> {
    const ends = clients.flatMap((client) => this.live.get(client) ?? []);
    if (ends.length === 0) return 0;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, DEFAULT_TIMEOUTS.goodbyeMs)));
    await Promise.race([Promise.all(ends), late]);
    clearTimeout(timer);
    const stuck = clients.filter((client) => this.live.has(client));
    for (const client of stuck) client.connection.stream.destroy();
    return stuck.length;
  }

  /** Ends a dedicated connection (connectClient's), cut if the server does not hang up in time; true when cut. */
  async end(client: pg.Client): Promise<boolean> {
    void client.end().catch(() => undefined);
    return (await this.cutLate([client])) > 0;
  }

  /** Parses the URL (throws QueueError `queue_url_invalid`); connects lazily, on the first query. */
  static open(url: unknown, options: QueueOptions = {}): FleetDb {
    return new FleetDb(parseQueueUrl(url), options);
  }

  get shown(): string {
    return this.target.shown;
  }

  log(message: string): void {
    this.options.log?.(this.redact(message));
  }

  redact(text: string): string {
    return redact(text, this.target.secrets);
  }

  private errorContext(): ErrorContext {
    return {
      shown: this.target.shown,
      user: this.target.user,
      database: this.target.database,
      passwordSource: this.passwordSource,
      redact: (text) => this.redact(text),
    };
  }

  private async password(): Promise<string | undefined> {
    if (this.target.urlPassword) {
      this.passwordSource = 'the URL';
      return this.target.urlPassword;
    }
    if (process.env.PGPASSWORD) {
      this.passwordSource = 'PGPASSWORD';
      return process.env.PGPASSWORD;
    }
    const { host, port, database } = this.target.options;
    const found = await new Promise<string | undefined>((resolve) => {
      pgPass({ host: host || 'localhost', port: port || '5432', database, user: this.target.user }, resolve);
    });
    if (found !== undefined) this.passwordSource = process.env.PGPASSFILE ? `PGPASSFILE (${process.env.PGPASSFILE})` : '~/.pgpass';
    return found;
  }

  /** node-postgres settings for one connection: the URL's, our timeouts, the password resolver. */
  clientConfig(role: string, overrides: pg.ClientConfig = {}): pg.ClientConfig {
    const { options } = this;
    return {
      ...(this.target.options as pg.ClientConfig),
      user: this.target.user,
      // undefined (no password found) is what node-postgres expects then, whatever its types say
      password: async () => (await this.password()) as string,
      application_name: this.target.options.application_name ?? `agent-async ${role}`,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs,
      query_timeout: options.queryTimeoutMs ?? DEFAULT_TIMEOUTS.queryMs,
      statement_timeout: options.statementTimeoutMs ?? DEFAULT_TIMEOUTS.statementMs,
      lock_timeout: options.lockTimeoutMs ?? DEFAULT_TIMEOUTS.lockMs,
      idle_in_transaction_session_timeout: DEFAULT_TIMEOUTS.idleInTransactionMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      ...overrides,
    };
  }

  /**
   * The error to give a caller: connection, password and database failures become a
   * QueueError naming queue_url; others keep their SQLSTATE, with the message redacted.
   */
  wrap(error: unknown): Error {
    const context = this.errorContext();
    const described = describeQueueError(error, context);
    if (described.queueCode !== 'queue_error') return described;
    if (error instanceof Error) {
      error.message = this.redact(error.message);
      return error;
    }
    return described;
  }

  async query<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    try {
      return await this.pool.query<Row>(text, values);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Runs `work` in one transaction on one pooled connection; a broken connection is discarded, never reused. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.wrap(error);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = isConnectionFailure(error);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw this.wrap(error);
    } finally {
      client.release(broken);
    }
  }

  /** A dedicated connection (LISTEN, migrations), with an 'error' handler; the caller ends it. */
  async connectClient(role: string, overrides: pg.ClientConfig = {}): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig(role, overrides));
    client.on('error', (error) => this.log(`${role} connection failed: ${error.message}`));
    try {
      await client.connect();
      this.track(client);
      return client;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw this.wrap(error);
    }
  }

  /** Connects once and reports the server: the check behind `doctor` and every clear connection error. */
  async ping(): Promise<{ serverVersion: string; database: string; user: string }> {
    const result = await this.query<{ server_version: string; db: string; usr: string }>(
      "SELECT current_setting('server_version') AS server_version, current_database() AS db, current_user AS usr",
    );
    const row = result.rows[0]!;
    return { serverVersion: row.server_version, database: row.db, user: row.usr };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Ends the pool's connections (the pool's own end does not wait for their goodbyes), cut
   * if the server does not hang up in time; resolves to how many were cut.
   */
  async close(): Promise<number> {
    if (this.closed) return 0;
    this.closed = true;
    const pooled = [...this.pooled];
    await this.pool.end().catch(() => undefined);
    return this.cutLate(pooled);
  }
}
