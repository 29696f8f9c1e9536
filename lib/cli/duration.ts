import { badInput, quoteInput } from '../errors.js';

/** Durations as the CLI's flags take them: "90", "90s", "30m", "12h", "7d", "2w". */

const DURATION = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** A duration flag in seconds; undefined when the flag was not given. */
export function optionalDuration(value: string | number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const match = DURATION.exec(String(value).trim());
  if (!match) throw badInput(flag, `${quoteInput(value)} is not a duration; use e.g. 90s, 30m, 12h, 7d or 2w`);
  return Number(match[1]) * UNIT_SECONDS[match[2] ?? 's']!;
}
