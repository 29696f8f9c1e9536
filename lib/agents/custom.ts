import type { CustomAgentConfig, JsonSelector, Policy } from '../config.js';
import { plainActivity } from './activity.js';
import { agentAdapter } from './judge.js';
import {
  asCount, asObject, emptyParse, eventOf, keepNote, promptDelivery,
  type AgentAdapter, type InvocationInput, type StreamParser,
} from './types.js';

/**
 * A CLI declared in config.json (aider, opencode, qwen-code, …): an argv template with
 * {prompt}, {cwd} and {model}, the prompt through argv or stdin, and output read as plain
 * text (the final message is what it printed on stdout) or as JSON lines with selectors.
 */

const TEXT_MAX = 64 * 1024;

function select(event: Record<string, unknown>, selector: JsonSelector | undefined): unknown {
  if (selector === undefined) return undefined;
  const { path, where } = typeof selector === 'string' ? { path: selector, where: undefined } : selector;
  if (where && !Object.entries(where).every(([key, value]) => event[key] === value)) return undefined;
  let value: unknown = event;
  for (const key of path.split('.')) {
    if (Array.isArray(value) && /^-?\d+$/.test(key)) value = value.at(Number(key));
    else value = asObject(value)[key];
    if (value === undefined || value === null) return undefined;
  }
  return value;
}

function textValue(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

function jsonlParser(config: CustomAgentConfig): StreamParser {
  const parsed = emptyParse();
  const selectors = config.jsonl;
  const usage = { input_tokens: null as number | null, output_tokens: null as number | null, cached_input_tokens: null as number | null, cost_usd: null as number | null };
  return {
    line(text, stream) {
      const event = eventOf(text, stream, parsed.notes);
      if (!event || stream === 'stderr') return;
      parsed.final_message = textValue(select(event, selectors.final_message)) ?? parsed.final_message;
      parsed.session_id = textValue(select(event, selectors.session_id)) ?? parsed.session_id;
      for (const key of ['input_tokens', 'output_tokens', 'cached_input_tokens'] as const) {
        usage[key] = asCount(select(event, selectors[key])) ?? usage[key];
      }
      const cost = select(event, selectors.cost_usd);
      if (typeof cost === 'number') usage.cost_usd = cost;
      if (Object.values(usage).some((v) => v !== null)) parsed.usage = { ...usage };
      const failure = select(event, selectors.error);
      if (failure !== undefined) parsed.failure = textValue(failure) ?? JSON.stringify(failure);
    },
    // a JSONL CLI has no generic success event: a clean exit with no reported error is success
    result: () => ({ ...parsed, completed: parsed.failure === null }),
  };
}

/**
 * The last lines of a stream, at most `max` characters with their newlines; a longer line keeps
 * its end. Kept as the lines themselves: appending each to one string made a node per line
 * that only the next collection freed (2 million short lines grew the supervisor by ~25 MiB).
 */
class TailLines {
  private readonly lines: string[] = [];
  private chars = 0;

  constructor(private readonly max: number) {}

  push(line: string): void {
    // a copy of a long line's end, so that the whole line is not kept alive through a slice
    const kept = line.length > this.max ? Buffer.from(line.slice(-this.max)).toString() : line;
    this.lines.push(kept);
    this.chars += kept.length + 1;
    while (this.chars > this.max && this.lines.length > 1) this.chars -= this.lines.shift()!.length + 1;
  }

  text(): string {
    return this.lines.join('\n');
  }
}

function textParser(): StreamParser {
  const parsed = emptyParse();
  const stdout = new TailLines(TEXT_MAX);
  return {
    line(text, stream) {
      if (stream === 'stderr') {
        if (text.trim() !== '') keepNote(parsed.notes, text.trim());
        return;
      }
      stdout.push(text);
    },
    result: () => {
      const message = stdout.text().trim();
      return { ...parsed, final_message: message === '' ? null : message, completed: true };
    },
  };
}

function fillTemplate(template: string[], input: InvocationInput, viaStdin: boolean): string[] {
  const { request } = input;
  const out: string[] = [];
  for (const arg of template) {
    if (arg.includes('{model}') && !request.model) {
      // drop "{model}" and the flag that introduces it (e.g. "--model", "{model}")
      if (arg === '{model}' && out.length > 0 && out[out.length - 1]!.startsWith('-')) out.pop();
      continue;
    }
    if (arg.includes('{prompt}') && viaStdin) continue;
    // one pass: a value put in (a cwd with "{prompt}" in its name) is never expanded again
    const values: Record<string, string> = { cwd: request.cwd, model: request.model ?? '', prompt: input.prompt };
    out.push(arg.replace(/\{(cwd|model|prompt)\}/g, (_whole, key: string) => values[key]!));
  }
  return out;
}

export function customAdapter(name: string, config: CustomAgentConfig): AgentAdapter {
  const binary = config.command[0]!;
  const subject = { name, binary, installHint: config.install_hint ?? `install ${binary}, or set agents.${name}.command[0] to its full path`, activity: plainActivity };
  return agentAdapter(subject, config.description ?? `custom agent (${binary})`, (input) => {
    const { request } = input;
    const forced = config.prompt_via === 'stdin';
    const delivery = promptDelivery(input);
    const viaStdin = forced || delivery.viaStdin;
    const command = fillTemplate(config.command, input, viaStdin);
    const extra = [...(config.policy_args[request.policy as Policy] ?? [])];
    if (request.resume_session && config.resume_args) {
      extra.push(...config.resume_args.map((arg) => arg.replaceAll('{session_id}', request.resume_session!)));
    }
    // policy and resume args go right after the binary, before a positional prompt
    const argv = [command[0]!, ...extra, ...command.slice(1)];
    return { argv, stdin: viaStdin ? input.prompt : null, env: { ...config.env } };
  }, () => (config.output === 'jsonl' ? jsonlParser(config) : textParser()), Boolean(config.resume_args));
}
