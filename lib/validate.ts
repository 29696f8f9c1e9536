import fs from 'node:fs';
import path from 'node:path';
import { UserError, badInput, quoteInput } from './errors.js';

/**
 * Checks of values that come from outside (CLI flags, MCP tool arguments). Each error names
 * the field and what is allowed; nothing here touches the spool.
 */

export function validateCwd(value: unknown, field = 'cwd'): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw badInput(field, 'is required: an absolute path to an existing directory');
  }
  if (value.includes('\0')) throw badInput(field, 'must not contain NUL characters');
  if (!path.isAbsolute(value)) {
    throw badInput(field, `must be an absolute path to an existing directory; got the relative path ${quoteInput(value)}`);
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(value);
  } catch {
    throw badInput(field, `${quoteInput(value)} does not exist; expected an absolute path to an existing directory`);
  }
  if (!stat.isDirectory()) {
    throw badInput(field, `${quoteInput(value)} is a file, not a directory`);
  }
  return path.normalize(value);
}

const MAX_ARGV_BYTES = 1024 * 1024;

export function validateArgv(value: unknown, field = 'argv'): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw badInput(field, 'is required: the command and its arguments, e.g. -- npm test');
  }
  let bytes = 0;
  value.forEach((arg, index) => {
    if (typeof arg !== 'string') throw badInput(`${field}[${index}]`, 'must be a string');
    if (arg.includes('\0')) throw badInput(`${field}[${index}]`, 'must not contain NUL characters');
    bytes += Buffer.byteLength(arg) + 1;
  });
  if ((value[0] as string).trim() === '') throw badInput(`${field}[0]`, 'the command must not be empty');
  if (bytes > MAX_ARGV_BYTES) {
    throw badInput(field, `is ${bytes} bytes; at most ${MAX_ARGV_BYTES} bytes are allowed (put large input in a file)`);
  }
  return value as string[];
}

export interface Clamped {
  value: number;
  notice: string | null;
}

function requireNumber(value: unknown, field: string): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isFinite(number)) {
    throw badInput(field, `must be a number of seconds; got ${quoteInput(value)}`);
  }
  return number;
}

/** A wait timeout: below 0 becomes 0 (look once), above `max` becomes `max`; both are said. */
export function clampWaitSeconds(value: unknown, fallback: number, max: number, field = 'timeout_seconds'): Clamped {
  if (value === undefined || value === null) return { value: Math.min(fallback, max), notice: null };
  const seconds = requireNumber(value, field);
  if (seconds < 0) return { value: 0, notice: `${field} ${seconds} is below 0; used 0 (check once, do not wait)` };
  if (seconds > max) return { value: max, notice: `${field} ${seconds} is above the maximum of ${max}; used ${max}` };
  return { value: seconds, notice: null };
}

/** A job's own limit: must be above 0; above `max` it is clamped, and that is said. */
export function clampJobSeconds(value: unknown, max: number, field: string): Clamped | null {
  if (value === undefined || value === null) return null;
  const seconds = requireNumber(value, field);
  if (seconds <= 0) throw badInput(field, `must be above 0 seconds (at most ${max}); got ${seconds}`);
  if (seconds > max) return { value: max, notice: `${field} ${seconds} is above the maximum of ${max}; used ${max}` };
  return { value: seconds, notice: null };
}

export function validateLimit(value: unknown, field: string, max: number, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > max) {
    throw badInput(field, `must be a whole number from 1 to ${max}; got ${quoteInput(value)}`);
  }
  return number;
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "90", "90s", "30m", "12h", "7d", "2w" → seconds. */
export function parseDuration(value: unknown, field: string): number {
  const text = String(value).trim();
  const match = DURATION.exec(text);
  if (!match) throw badInput(field, `${quoteInput(value)} is not a duration; use e.g. 90s, 30m, 12h, 7d or 2w`);
  return Number(match[1]) * UNIT_SECONDS[match[2] ?? 's']!;
}

export function validateStatus<T extends string>(value: unknown, allowed: readonly T[], field = 'status'): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new UserError('bad_input', `${field}: ${quoteInput(value)} is not a status; allowed: ${allowed.join(', ')}`, field);
}
