import os from 'node:os';
import { parse, type ConnectionOptions } from 'pg-connection-string';
import { errnoCode } from '../errors.js';
import { QueueError } from './errors.js';

/**
 * The queue URL (`queue_url` in config.json or `AGENT_ASYNC_QUEUE_URL`): a PostgreSQL URL such
 * as `postgres://agent-async@db.internal/agent_async`. Its password, when it has one, is a
 * secret: every text this module builds from a URL shows `shown` (user@host:port/database),
 * and `redact` removes the password from any message before it leaves the fleet module.
 * Query parameters (sslmode, sslrootcert, sslcert, sslkey, application_name, options, host
 * for a unix socket folder) pass through to node-postgres unchanged.
 */
export interface QueueTarget {
  /** node-postgres settings parsed from the URL, password removed (it is resolved at connect time). */
  options: ConnectionOptions;
  /** The password written in the URL itself, if any (discouraged: prefer ~/.pgpass or PGPASSFILE). */
  urlPassword: string | undefined;
  /** user@host:port/database, safe to print. */
  shown: string;
  user: string;
  database: string;
  /** Strings that must never appear in a message: the password, raw and URL-encoded. */
  secrets: string[];
}

const SCHEMES = new Set(['postgres:', 'postgresql:']);
const EXAMPLE = 'postgres://user@host[:port]/database (password in ~/.pgpass or PGPASSFILE)';

function invalid(reason: string): QueueError {
  return new QueueError('queue_url_invalid', `queue_url: ${reason}; expected ${EXAMPLE}`);
}

/** The secrets a raw URL carries, found without trusting that it parses. */
function rawSecrets(raw: string): string[] {
  const found: string[] = [];
  const userInfo = /^[a-z]+:\/\/([^@/?#]*)@/i.exec(raw)?.[1];
  const colon = userInfo?.indexOf(':') ?? -1;
  if (userInfo && colon >= 0) found.push(userInfo.slice(colon + 1));
  const query = /[?&]password=([^&#]*)/i.exec(raw)?.[1];
  if (query) found.push(query);
  return found.flatMap((secret) => {
    let decoded = secret;
    try {
      decoded = decodeURIComponent(secret);
    } catch {
      // not valid percent-encoding: the raw form is the secret
    }
    return [secret, decoded];
  }).filter((secret) => secret.length > 0);
}

/** Replaces every secret (and any password-bearing URL) in a text. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*):[^@\s]*@/gi, '$1:***@').replace(/([?&]password=)[^&\s]*/gi, '$1***');
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join('***');
  return out;
}

function describeHost(options: ConnectionOptions): string {
  const host = options.host || 'localhost';
  const port = options.port || '5432';
  return host.startsWith('/') ? `socket ${host}:${port}` : `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export function parseQueueUrl(raw: unknown): QueueTarget {
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid('is empty');
  const secrets = rawSecrets(raw);
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (!scheme || !SCHEMES.has(scheme)) throw invalid(`${JSON.stringify(redact(raw, secrets).slice(0, 80))} is not a PostgreSQL URL`);
  let options: ConnectionOptions;
  try {
    options = parse(raw);
  } catch (error) {
    // parse reads the files sslrootcert, sslcert and sslkey name
    const file = (error as { path?: unknown }).path;
    if (typeof file === 'string') {
      throw new QueueError('queue_tls', `queue_url: cannot read ${file} (named by sslrootcert, sslcert or sslkey): ${errnoCode(error) ?? 'unreadable'}`);
    }
    throw invalid(`${JSON.stringify(redact(raw, secrets).slice(0, 80))} cannot be parsed`);
  }
  const urlPassword = options.password || undefined;
  delete options.password;
  // like libpq: no user in the URL means PGUSER, then the login name
  const user = options.user || process.env.PGUSER || os.userInfo().username;
  const database = options.database ?? '';
  if (!database) throw invalid('names no database (the path after the host)');
  if (options.port && !/^\d{1,5}$/.test(options.port)) throw invalid(`port ${JSON.stringify(options.port)} is not a number`);
  return {
    options,
    urlPassword,
    shown: `postgres://${user}@${describeHost(options)}/${database}`,
    user,
    database,
    secrets: urlPassword ? [...new Set([...secrets, urlPassword, encodeURIComponent(urlPassword)])] : secrets,
  };
}

/** The queue URL in effect: `queue_url` of the config (which `AGENT_ASYNC_QUEUE_URL` overrides). Null = fleet mode off. */
export function queueUrlOf(config: { queue_url?: string | null }): string | null {
  const url = config.queue_url;
  return typeof url === 'string' && url.trim() !== '' ? url : null;
}
