import { UserError, errnoCode } from '../errors.js';

/**
 * Errors of the fleet queue. `QueueError` is a `UserError` on the field `queue_url` (the faces
 * show it verbatim, exit code of a configuration error), with a finer `queueCode` and whether
 * retrying later can help. Its message never holds the password: every message built from a
 * URL or a driver error goes through `redact` first.
 */
export type QueueErrorCode =
  | 'queue_url_invalid'
  | 'queue_unreachable'
  | 'queue_auth_failed'
  | 'queue_no_password'
  | 'queue_no_database'
  | 'queue_tls'
  | 'queue_schema_newer'
  | 'queue_host_taken'
  | 'queue_error';

export class QueueError extends UserError {
  constructor(
    readonly queueCode: QueueErrorCode,
    message: string,
    readonly retryable = false,
  ) {
    super('config_invalid', message, 'queue_url');
    this.name = 'QueueError';
  }
}

/**
 * A write refused because the runner's lease epoch is no longer the owner's (its lease
 * expired and another runner took over, or it was released). The runner must stop all work
 * of that epoch at once: kill its workers, stop writing output, and register again.
 */
export class LeaseLost extends Error {
  readonly code = 'lease_lost';
  constructor(readonly host: string, readonly epoch: number, detail: string) {
    super(`lease of host ${JSON.stringify(host)} at epoch ${epoch} is no longer valid: ${detail}`);
    this.name = 'LeaseLost';
  }
}

/** SQLSTATE raised by our SQL functions when a lease token is stale. */
export const SQLSTATE_LEASE_LOST = 'AAL01';

const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE', 'ENOENT']);
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host name',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection broken',
  ENOENT: 'no server socket in that folder',
};
const TRANSIENT_MESSAGES = [/Connection terminated/i, /timeout expired/i, /timeout exceeded when trying to connect/i, /Query read timeout/i, /connection timeout/i, /not queryable/i];

function sqlState(error: unknown): string | undefined {
  const code = errnoCode(error);
  return code && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * True when the connection itself failed: the server restarting or shutting down
 * (57P01-57P03), connection failures (class 08), too many connections (53300), and the
 * socket errors and client timeouts of an unreachable, vanished or hung server.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof QueueError) return error.queueCode === 'queue_unreachable';
  const state = sqlState(error);
  if (state) return state.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(state);
  const code = errnoCode(error);
  if (code && UNREACHABLE_ERRNO.has(code)) return true;
  const message = error instanceof Error ? error.message : String(error);
  return TRANSIENT_MESSAGES.some((pattern) => pattern.test(message));
}

/** A failure that a later attempt can get past: a connection failure, or losing a race for a lock. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof QueueError) return error.retryable;
  return isConnectionFailure(error) || ['40001', '40P01', '55P03'].includes(sqlState(error) ?? '');
}

export interface ErrorContext {
  shown: string;
  user: string;
  database: string;
  /** Where the password came from, to say which one is wrong. */
  passwordSource: string;
  redact: (text: string) => string;
}

/** Turns a connection or query failure into a QueueError that says what to fix, without the password. */
export function describeQueueError(error: unknown, context: ErrorContext): QueueError {
  if (error instanceof QueueError) return error;
  const raw = context.redact(error instanceof Error ? error.message : String(error));
  const at = `queue_url (${context.shown})`;
  const state = sqlState(error);
  const code = errnoCode(error);
  if (state === '28P01') {
    return new QueueError('queue_auth_failed', `${at}: PostgreSQL refused the password of user ${JSON.stringify(context.user)} (password from ${context.passwordSource}); fix it there`);
  }
  if (state === '28000') {
    return new QueueError('queue_auth_failed', `${at}: PostgreSQL does not let user ${JSON.stringify(context.user)} in: ${raw} (see the server's pg_hba.conf)`);
  }
  if (state === '3D000') {
    return new QueueError('queue_no_database', `${at}: database ${JSON.stringify(context.database)} does not exist; create it (createdb ${context.database}) or fix the path of the URL`);
  }
  if (/client password must be a string|no password supplied/i.test(raw)) {
    return new QueueError('queue_no_password', `${at}: the server asks for a password for user ${JSON.stringify(context.user)} and none was found; put it in ~/.pgpass or the file PGPASSFILE names (host:port:database:user:password, mode 0600)`);
  }
  if (!state && (/CERT|TLS|SSL/.test(code ?? '') || /does not support SSL|certificate/i.test(raw))) {
    return new QueueError('queue_tls', `${at}: TLS failed: ${raw} (check sslmode, sslrootcert, sslcert, sslkey in the URL)`);
  }
  if (isConnectionFailure(error)) {
    const why = code && ERRNO_TEXT[code] ? `${ERRNO_TEXT[code]} (${code})` : raw;
    return new QueueError('queue_unreachable', `${at}: cannot reach PostgreSQL: ${why}; check the host and port and that the server runs`, true);
  }
  return new QueueError('queue_error', `${at}: ${raw}${state ? ` (SQLSTATE ${state})` : ''}`);
}
