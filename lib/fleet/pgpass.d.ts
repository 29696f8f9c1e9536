declare module 'pgpass' {
  interface ConnectionInfo {
    host?: string | null;
    port?: number | string | null;
    database?: string | null;
    user?: string | null;
  }
  /** Looks the password up in PGPASSFILE or ~/.pgpass (unless PGPASSWORD is set); undefined when none matches. */
  function pgPass(connInfo: ConnectionInfo, callback: (password: string | undefined) => void): void;
  export = pgPass;
}
