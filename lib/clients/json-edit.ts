import { parseTree, type Node, type ParseError, printParseErrorCode } from 'jsonc-parser';

/**
 * Editing a client's JSON (or JSONC) config as text, so nothing else in it changes: other
 * entries keep their order, formatting and comments. A member is added as the last one of its
 * object and removed with the comma that joined it, so add then remove gives back the same
 * bytes. A file that does not parse is reported, never rewritten.
 */

export class MalformedConfig extends Error {
  constructor(file: string, detail: string) {
    super(`${file}: ${detail}; it was left untouched: fix it or remove the entry by hand`);
    this.name = 'MalformedConfig';
  }
}

export function parseConfigTree(text: string, file: string): Node {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0 || !root) {
    const first = errors[0];
    const where = first ? ` at offset ${first.offset}: ${printParseErrorCode(first.error)}` : '';
    throw new MalformedConfig(file, `not valid JSON (empty or unparsable${where})`);
  }
  if (root.type !== 'object') throw new MalformedConfig(file, 'not valid here (the top level is not an object)');
  return root;
}

function findMember(object: Node, key: string): Node | undefined {
  return object.children?.find((property) => property.children?.[0]?.value === key);
}

/** The node at a path of object keys, or undefined. */
export function findPath(root: Node, keys: string[]): Node | undefined {
  let node: Node | undefined = root;
  for (const key of keys) {
    if (node?.type !== 'object') return undefined;
    node = findMember(node, key)?.children?.[1];
  }
  return node;
}

function lineIndent(text: string, offset: number): string {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))![0];
}

function indentUnit(text: string): string {
  const match = /\n([ \t]+)\S/.exec(text);
  return match?.[1]?.startsWith('\t') ? '\t' : match ? match[1]!.slice(0, Math.min(match[1]!.length, 4)) || '  ' : '  ';
}

function render(value: unknown, indent: string, unit: string): string {
  return JSON.stringify(value, null, unit).replace(/\n/g, `\n${indent}`);
}

/**
 * Adds `"key": value` as the last member of the object at `objectPath` (creating the objects
 * on the way as needed). Returns the new text and which objects it had to create.
 */
export function addMember(text: string, file: string, objectPath: string[], key: string, value: unknown): { text: string; created: string[] } {
  const root = parseConfigTree(text, file);
  const unit = indentUnit(text);
  let object = root;
  let depth = 0;
  for (; depth < objectPath.length; depth += 1) {
    const next = findMember(object, objectPath[depth]!)?.children?.[1];
    if (!next) break;
    if (next.type !== 'object') throw new MalformedConfig(file, `"${objectPath.slice(0, depth + 1).join('.')}" is not an object`);
    object = next;
  }
  // what to insert into `object`: the member, wrapped in the objects of the path still missing
  let firstKey = key;
  let innerValue: unknown = value;
  if (depth < objectPath.length) {
    innerValue = { [key]: value };
    for (let i = objectPath.length - 1; i > depth; i -= 1) innerValue = { [objectPath[i]!]: innerValue };
    firstKey = objectPath[depth]!;
  }
  const children = object.children ?? [];
  const last = children.at(-1);
  const memberIndent = last ? lineIndent(text, last.offset) : lineIndent(text, object.offset) + unit;
  const rendered = `${JSON.stringify(firstKey)}: ${render(innerValue, memberIndent, unit)}`;
  let insertAt: number;
  let insertion: string;
  if (last) {
    insertAt = last.offset + last.length;
    insertion = `,\n${memberIndent}${rendered}`;
  } else {
    const close = object.offset + object.length - 1;
    insertAt = object.offset + 1;
    const between = text.slice(insertAt, close);
    insertion = `\n${memberIndent}${rendered}${between.includes('\n') ? '' : `\n${lineIndent(text, object.offset)}`}`;
  }
  return { text: text.slice(0, insertAt) + insertion + text.slice(insertAt), created: objectPath.slice(depth) };
}

/** Removes the member at `path` with the comma that joined it; unchanged text when absent. */
export function removeMember(text: string, file: string, path: string[]): string {
  const root = parseConfigTree(text, file);
  const parent = path.length === 1 ? root : findPath(root, path.slice(0, -1));
  if (parent?.type !== 'object') return text;
  const children = parent.children ?? [];
  const index = children.findIndex((property) => property.children?.[0]?.value === path.at(-1));
  if (index === -1) return text;
  const member = children[index]!;
  const start = member.offset;
  const end = member.offset + member.length;
  const previous = children[index - 1];
  if (!previous && !children[index + 1]) {
    // the only member: drop it and the whitespace before it, keep the braces
    return text.slice(0, parent.offset + 1) + text.slice(end);
  }
  // Only the member, its own line and one comma go; comments around it stay where they are.
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const ownLine = lineStart > 0 && text.slice(lineStart, start).trim() === '';
  const next = children[index + 1];
  if (next) {
    // the comma after the member goes with it
    const comma = commaAfter(text, end);
    if (comma === -1) return text.slice(0, start) + text.slice(next.offset);
    let to = comma + 1;
    if (ownLine) {
      const lineEnd = text.indexOf('\n', to);
      if (lineEnd !== -1 && text.slice(to, lineEnd).trim() === '') to = lineEnd + 1;
    }
    return text.slice(0, ownLine ? lineStart : start) + text.slice(to);
  }
  // the last member: the comma after the one before it goes
  const comma = commaAfter(text, previous!.offset + previous!.length);
  if (comma === -1) return text.slice(0, previous!.offset + previous!.length) + text.slice(end);
  return text.slice(0, comma) + text.slice(comma + 1, ownLine ? lineStart - 1 : start) + text.slice(end);
}

/** The position of the comma that follows `from` with only whitespace between; -1 if none. */
function commaAfter(text: string, from: number): number {
  let at = from;
  while (at < text.length && /\s/.test(text[at]!)) at += 1;
  return text[at] === ',' ? at : -1;
}

/** Whether an object at `path` has no members left. */
export function isEmptyObject(text: string, file: string, path: string[]): boolean {
  const node = path.length === 0 ? parseConfigTree(text, file) : findPath(parseConfigTree(text, file), path);
  return node?.type === 'object' && (node.children?.length ?? 0) === 0;
}

export function readMember(text: string, file: string, path: string[]): unknown {
  const node = findPath(parseConfigTree(text, file), path);
  if (!node) return undefined;
  return JSON.parse(text.slice(node.offset, node.offset + node.length)) as unknown;
}

/** Which of `items` the array at `path` does not hold yet (all of them when it is missing). */
export function missingArrayItems(text: string, file: string, path: string[], items: string[]): string[] {
  const array = findPath(parseConfigTree(text, file), path);
  if (!array) return items;
  if (array.type !== 'array') throw new MalformedConfig(file, `"${path.join('.')}" is not a list`);
  const present = new Set((array.children ?? []).map((child) => child.value as unknown));
  return items.filter((item) => !present.has(item));
}

/** Appends strings to the array at `path` (creating it, and the objects on the way, if needed). */
export function addArrayItems(text: string, file: string, path: string[], items: string[]): string {
  const missing = missingArrayItems(text, file, path, items);
  if (missing.length === 0) return text;
  const array = findPath(parseConfigTree(text, file), path);
  if (!array) return addMember(text, file, path.slice(0, -1), path.at(-1)!, missing).text;
  const last = array.children?.at(-1);
  const unit = indentUnit(text);
  if (last) {
    const indent = lineIndent(text, last.offset);
    const sameLine = !text.slice(array.offset, last.offset).includes('\n');
    const joiner = sameLine ? ', ' : `,\n${indent}`;
    const insertion = missing.map((item) => `${joiner}${JSON.stringify(item)}`).join('');
    const at = last.offset + last.length;
    return text.slice(0, at) + insertion + text.slice(at);
  }
  const indent = lineIndent(text, array.offset) + unit;
  const at = array.offset + 1;
  const insertion = `\n${missing.map((item) => `${indent}${JSON.stringify(item)}`).join(',\n')}\n${lineIndent(text, array.offset)}`;
  return text.slice(0, at) + insertion + text.slice(array.offset + array.length - 1);
}

/** Removes the given strings from the array at `path` (with their commas). */
export function removeArrayItems(text: string, file: string, path: string[], items: string[]): string {
  let result = text;
  for (const item of items) {
    const array = findPath(parseConfigTree(result, file), path);
    if (array?.type !== 'array') return result;
    const children = array.children ?? [];
    const index = children.findIndex((child) => child.value === item);
    if (index === -1) continue;
    const node = children[index]!;
    const previous = children[index - 1];
    const next = children[index + 1];
    if (previous) result = result.slice(0, previous.offset + previous.length) + result.slice(node.offset + node.length);
    else if (next) result = result.slice(0, node.offset) + result.slice(next.offset);
    else result = result.slice(0, array.offset + 1) + result.slice(array.offset + array.length - 1);
  }
  return result;
}
