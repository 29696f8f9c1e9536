/** Types of pg-cluster.mjs (plain JavaScript so that the benchmarks can use it too). */
export class PgUnavailable extends Error {}

export interface PgCluster {
  base: string;
  data: string;
  socketDir: string;
  logFile: string;
  bin: string;
  port: number;
  /** The test role that logs in over TCP with a password. */
  role: string;
  password: string;
  /** A pgpass file (0600) with the test role's password for this cluster. */
  pgpassFile: string;
  /** The server's self-signed certificate (to verify TLS), when openssl was there. */
  caFile: string | undefined;
  start(): Promise<void>;
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILLs the postmaster and all backends (a crash); `start` recovers. */
  kill(): Promise<void>;
  postmasterPid(): number;
  /** A statement as the superuser, through the unix socket. */
  admin(sql: string, params?: unknown[]): Promise<Array<Record<string, any>>>;
  /** A new database owned by the test role; returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  url(database: string, options?: { password?: boolean; user?: string; query?: string }): string;
  destroy(): Promise<void>;
}

export function findPgBin(): string | undefined;
export function startCluster(options?: { log?: (message: string) => void }): Promise<PgCluster>;
