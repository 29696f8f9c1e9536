/**
 * The command lines `serve` takes without the CLI's parser: `serve`, `serve --tools a,b`
 * (or `--tools=a,b`), with `--home <dir>` anywhere. Anything else (help, a typo, another
 * command) returns null and goes through the full CLI, which explains it. Imports nothing.
 */
export interface ServeArgs {
  tools: string[] | null;
  home: string | undefined;
}

function valueOf(flag: string, words: string[], at: number): { value: string; used: number } | null {
  const word = words[at]!;
  if (word.startsWith(`${flag}=`)) return { value: word.slice(flag.length + 1), used: 1 };
  if (word === flag && at + 1 < words.length && !words[at + 1]!.startsWith('-')) return { value: words[at + 1]!, used: 2 };
  return null;
}

export function serveArgs(words: string[]): ServeArgs | null {
  const found: ServeArgs = { tools: null, home: undefined };
  let command = false;
  for (let at = 0; at < words.length;) {
    const word = words[at]!;
    if (word === 'serve' && !command) {
      command = true;
      at += 1;
      continue;
    }
    const home = valueOf('--home', words, at);
    const tools = command ? valueOf('--tools', words, at) : null;
    if (home && found.home === undefined) found.home = home.value;
    else if (tools && found.tools === null) found.tools = tools.value.split(',').map((name) => name.trim()).filter(Boolean);
    else return null;
    at += (home ?? tools)!.used;
  }
  return command ? found : null;
}
