/**
 * Hints for failures a user can act on, recognised in what the CLI said (its failure message,
 * warnings and stderr lines).
 */
export interface HintSubject {
  name: string;
  binary: string;
  installHint: string;
  loginHint?: string;
}

const RULES: Array<{ pattern: RegExp; unless?: RegExp; hint: (agent: HintSubject) => string }> = [
  {
    pattern: /\b(401|403)\b|unauthori[sz]ed|invalid api key|api key not valid|not logged in|please (run )?\/?login|authentication (failed|required)|invalid auth method|missing api key|no api key/i,
    hint: (a) => `${a.name} is not logged in or has no valid API key: ${a.loginHint ?? `log in with ${a.binary}`}`,
  },
  {
    pattern: /trusted directory|workspace trust|untrusted (workspace|folder|directory)/i,
    hint: (a) => `${a.name} does not trust the job's cwd: trust the folder in ${a.binary} once, or run the job in a folder it trusts`,
  },
  {
    pattern: /\b429\b|rate.?limit|quota|resource_exhausted|too many requests|usage limit|overloaded/i,
    hint: () => 'the provider refused for rate or quota limits: wait and retry the job (agent-async retry <id>), or use another model or account',
  },
  {
    pattern: /\bmodel\b[^\n]{0,60}(not found|does not exist|not supported|is not available)|(unknown|invalid|unsupported) model|model_not_found/i,
    // a codex warning about a slug it has no metadata for, not a refusal
    unless: /model metadata for/i,
    hint: (a) => `the model name was refused: check it (${a.binary} lists its models) or leave model unset to use the CLI's default`,
  },
  {
    pattern: /connection refused|econnrefused|enotfound|waiting for network|unable to connect|network (error|is unreachable)/i,
    hint: (a) => `${a.name} could not reach its API: check the network, a proxy, or the base URL it is configured with`,
  },
];

/** The hint for the first text (most telling first) that a rule recognises. */
export function hintFor(agent: HintSubject, texts: Array<string | null | undefined>): string | undefined {
  for (const text of texts) {
    if (!text) continue;
    const rule = RULES.find((candidate) => candidate.pattern.test(text) && !candidate.unless?.test(text));
    if (rule) return rule.hint(agent);
  }
  return undefined;
}
