/**
 * Errors a user (or a calling model) can cause. Each names the field at fault and what is
 * allowed, so both faces (CLI, MCP) can show it verbatim. Nothing else in the code throws
 * these for internal faults.
 */
export type UserErrorCode =
  | 'bad_input'
  | 'not_found'
  | 'conflict'
  | 'corrupt_state'
  | 'config_invalid'
  /** The spool cannot be written: its disk is full, a quota is used up, or it is read-only. */
  | 'no_space';

export class UserError extends Error {
  readonly code: UserErrorCode;
  readonly field: string | undefined;

  constructor(code: UserErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
    this.field = field;
  }
}

export function badInput(field: string, message: string): UserError {
  return new UserError('bad_input', `${field}: ${message}`, field);
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}

/** Node's errno code of an error, if it has one. */
export function errnoCode(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'code' in error) {
    const code = (error).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Shows a value from outside in a message without letting it flood or break the line. */
export function quoteInput(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  const shown = text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
  return JSON.stringify(shown);
}
