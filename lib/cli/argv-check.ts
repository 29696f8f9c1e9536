/**
 * What a mistyped command line meant, said before yargs' own wording ("Not enough non-option
 * arguments", "Unknown arguments: l, a") hides it. Pure: the raw words and the flags the
 * command knows in, a message out.
 */

/** The flags written before `--`: `--name`, `--name=value`, `--no-name`, and each letter of `-abc`. */
export function flagsUsed(argv: readonly string[]): string[] {
  const flags: string[] = [];
  for (const word of argv) {
    if (word === '--') break;
    if (word.startsWith('--')) flags.push(`--${word.slice(2).split('=')[0]}`);
    else if (/^-[a-zA-Z]/.test(word)) for (const letter of word.slice(1).split('=')[0]!) flags.push(`-${letter}`);
  }
  return flags;
}

function isKnown(flag: string, known: ReadonlySet<string>): boolean {
  const name = flag.replace(/^--?/, '');
  return known.has(name) || (name.startsWith('no-') && known.has(name.slice(3)));
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The known long flag a mistyped one most likely meant, if one is close. */
export function closestFlag(flag: string, known: ReadonlySet<string>): string | undefined {
  const name = flag.replace(/^--?/, '');
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    if (candidate.length < 2 || /[A-Z]/.test(candidate)) continue; // long kebab names only
    const distance = candidate.startsWith(name) || name.startsWith(candidate) ? 1 : editDistance(name, candidate);
    if (distance <= Math.max(1, Math.floor(candidate.length / 3)) && (!best || distance < best.distance)) best = { name: candidate, distance };
  }
  return best && `--${best.name}`;
}

/**
 * The message for a command line whose flags the command does not know, or undefined when
 * every flag is known. `command` is the command word (`start`), `words` the raw arguments.
 */
export function unknownFlagMessage(command: string, words: readonly string[], known: ReadonlySet<string>): string | undefined {
  const unknown = flagsUsed(words).filter((flag) => !isKnown(flag, known));
  if (unknown.length === 0) return undefined;
  const positional = words.filter((word) => !word.startsWith('-'));
  if (command === 'start' && positional[1] === 'exec' && !words.includes('--')) {
    const commandStart = words.indexOf('exec') + 1;
    const meant = ['agent-async', 'start', 'exec', '--', ...words.slice(commandStart)].join(' ');
    return `${command}: put the command after --, so its own flags (${unknown.join(', ')}) are not read as agent-async's: ${meant}`;
  }
  const described = unknown.map((flag) => {
    const near = closestFlag(flag, known);
    return near ? `${flag} (did you mean ${near}?)` : flag;
  });
  return `${command}: unknown flag ${described.join(', ')}; see agent-async ${command} --help`;
}

const UNIT_WORDS = /^(s|sec|secs|seconds?|m|min|mins|minutes?|h|hrs?|hours?|d|days?|w|weeks?)$/i;

/**
 * `start exec` takes its command after `--` only: words between the agent and `--` were meant
 * as something else (`--timeout 5 min` gives the flag "5" and leaves "min"). The message says
 * what, or undefined when there are none.
 */
export function strayWordsMessage(stray: readonly string[], words: readonly string[]): string | undefined {
  if (stray.length === 0) return undefined;
  const first = stray[0]!;
  const at = words.indexOf(first);
  const flag = at >= 2 && words[at - 2]?.startsWith('--') ? words[at - 2] : undefined;
  const value = at >= 1 ? words[at - 1] : undefined;
  const hint = flag && value && UNIT_WORDS.test(first)
    ? ` (did you mean ${flag} ${value}${first[0]!.toLowerCase()}? a duration is one word: 90s, 5m, 2h)`
    : ' (a flag value with spaces needs quotes)';
  return `start exec: ${stray.map((word) => JSON.stringify(word)).join(', ')} before --: the command goes after --, and each flag takes one word${hint}`;
}
