import { asObject, asString, jsonLine } from './types.js';

/**
 * What a worker is doing now, in one short line, read from one line of its output: each
 * adapter knows its CLI's stream (the command it runs, the tool it calls, the file it edits);
 * null for a line that says nothing of the kind (stderr noise, bookkeeping events).
 */
export type ActivityReader = (line: string) => string | null;

export const ACTIVITY_MAX = 120;

/** Whitespace folded, cut to `max` characters. */
export function oneLine(text: string, max = ACTIVITY_MAX): string {
  const folded = text.replace(/\s+/g, ' ').trim();
  return folded.length > max ? `${folded.slice(0, max - 1)}…` : folded;
}

/** The argument of a tool call that says the most about it: a command, a path, a pattern. */
export function toolArgument(input: unknown): string {
  const args = asObject(input);
  for (const key of ['command', 'file_path', 'absolute_path', 'path', 'pattern', 'query', 'url', 'description']) {
    const value = asString(args[key]);
    if (value) return value;
  }
  return '';
}

/** `name: argument`, or the name alone. */
export function toolCall(name: string, input: unknown): string {
  const argument = toolArgument(input);
  return argument ? `${name}: ${argument}` : name;
}

/** A line as it is, for workers whose output is plain text (exec, custom agents): null when blank or a JSON event. */
export const plainActivity: ActivityReader = (line) => {
  if (line.trim() === '' || jsonLine(line)) return null;
  return line;
};

/** Claude Code and cursor-agent: an assistant message's last tool call, or what it said. */
export function assistantActivity(event: Record<string, unknown>): string | null {
  const content = asObject(event.message).content;
  if (!Array.isArray(content)) return null;
  for (const part of content.map(asObject).reverse()) {
    if (part.type === 'tool_use') return toolCall(asString(part.name) ?? 'tool', part.input);
    if (part.type === 'text' && asString(part.text)) return `says: ${String(part.text)}`;
    if (part.type === 'thinking') return 'thinking';
  }
  return null;
}
