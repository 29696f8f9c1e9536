#!/usr/bin/env node
// A stand-in for the `claude` and `codex` CLIs' MCP commands (mcp add / get / remove), as
// installed under those names: records its argv in STUB_RECORD_DIR/<name>.log and keeps its
// registry in STUB_STATE_DIR (never in HOME, so a test can compare HOME byte for byte).
import fs from 'node:fs';
import path from 'node:path';

const name = path.basename(process.argv[1]);
const args = process.argv.slice(2);
if (process.env.STUB_RECORD_DIR) fs.appendFileSync(path.join(process.env.STUB_RECORD_DIR, `${name}.log`), `${JSON.stringify(args)}\n`);
if (args[0] === '--version') {
  console.log(`${name} 1.0.0-stub`);
  process.exit(0);
}
const stateFile = path.join(process.env.STUB_STATE_DIR ?? '/nonexistent', `${name}.json`);
const state = fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, 'utf8')) : {};
const save = () => fs.writeFileSync(stateFile, JSON.stringify(state));
if (args[0] !== 'mcp') {
  console.error(`${name} stub: only "mcp" is supported`);
  process.exit(2);
}
const rest = args.slice(1).filter((a, i, all) => !(a === '-s' || all[i - 1] === '-s'));
const [verb, server, ...tail] = rest;
if (verb === 'add') {
  // claude mcp add <name> [-e KEY=value]... -- <command> [args...]
  const separator = tail.indexOf('--');
  const command = separator === -1 ? tail : tail.slice(separator + 1);
  if (state[server] && name === 'claude') {
    console.error(`MCP server ${server} already exists in user config`);
    process.exit(1);
  }
  state[server] = command;
  save();
  console.log(`Added ${server}`);
} else if (verb === 'get') {
  if (!state[server]) {
    console.error(`No MCP server named "${server}"`);
    process.exit(1);
  }
  console.log(`${server}: ${state[server].join(' ')}`);
} else if (verb === 'remove') {
  if (!state[server]) process.exit(1);
  delete state[server];
  save();
  console.log(`Removed ${server}`);
} else {
  process.exit(2);
}
