import { customAlphabet } from 'nanoid';

/**
 * Job ids: 11 base-36 characters of creation time in microseconds (so `ls jobs/` sorts them
 * by age, FIFO) followed by 12 random base-36 characters from nanoid (about 62 bits, so ids
 * cannot be guessed). Example: `0kp3z7w1c2a9x4q7m2t8b6df`.
 */
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const TIME_CHARS = 11;
const RANDOM_CHARS = 12;
export const JOB_ID_LENGTH = TIME_CHARS + RANDOM_CHARS;
const JOB_ID_PATTERN = new RegExp(`^[0-9a-z]{${JOB_ID_LENGTH}}$`);

const randomPart = customAlphabet(ALPHABET, RANDOM_CHARS);
let lastMicros = 0n;

function nowMicros(): bigint {
  const millis = BigInt(Date.now());
  const subMillis = BigInt(Math.floor((performance.now() % 1) * 1000));
  let micros = millis * 1000n + subMillis;
  if (micros <= lastMicros) micros = lastMicros + 1n;
  lastMicros = micros;
  return micros;
}

export function newJobId(): string {
  return nowMicros().toString(36).padStart(TIME_CHARS, '0') + randomPart();
}

export function isJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID_PATTERN.test(value);
}

/** Creation time encoded in an id. */
export function jobIdTime(id: string): Date {
  let micros = 0n;
  for (const char of id.slice(0, TIME_CHARS)) micros = micros * 36n + BigInt(ALPHABET.indexOf(char));
  return new Date(Number(micros / 1000n));
}

/** Prefix lengths of the two index levels (see `index.ts`): ~36 min and ~1.7 s of ids. */
export const INDEX_LEVELS = [5, 7] as const;
