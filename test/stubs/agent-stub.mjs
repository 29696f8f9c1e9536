#!/usr/bin/env node
// A stand-in for an agent CLI (installed under the name codex, claude, gemini or cursor-agent):
// records its argv, environment, cwd and stdin, then replays a recorded transcript.
//   STUB_RECORD_DIR   where to write <name>.<pid>.json
//   STUB_TRANSCRIPT   file to print on stdout (default: the ok transcript of this CLI)
//   STUB_STDERR       file to print on stderr
//   STUB_EXIT         exit code (default 0)
//   STUB_SLEEP_MS     pause before answering
//   STUB_EDIT_FILE    a file (relative to its cwd) it appends STUB_EDIT_TEXT to, as an agent edits
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const name = path.basename(process.argv[1]);
const here = path.dirname(fs.realpathSync(fileURLToPath(import.meta.url)));
const fixtures = path.join(here, '..', 'fixtures');
const defaults = {
  codex: 'transcripts/codex_exec_json_ok.jsonl',
  claude: 'transcripts/claude_stream_json_ok.jsonl',
  gemini: 'transcripts/gemini_stream_json_ok.jsonl',
  'cursor-agent': 'cursor/cursor_stream_json_ok.jsonl',
};

if (process.argv[2] === '--version') {
  process.stdout.write(`${name} 9.9.9-stub\n`);
  process.exit(0);
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const stdin = Buffer.concat(chunks).toString('utf8');

const recordDir = process.env.STUB_RECORD_DIR;
if (recordDir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) =>
    /^(AGENT_ASYNC_|GEMINI_CLI_|IS_SANDBOX|STUB_|CUSTOM_)/.test(key)));
  fs.writeFileSync(path.join(recordDir, `${name}.${process.pid}.json`), JSON.stringify({
    name, argv: process.argv.slice(2), cwd: process.cwd(), env, stdin, stdinBytes: Buffer.byteLength(stdin),
  }));
}
if (process.env.STUB_EDIT_FILE) fs.appendFileSync(path.join(process.cwd(), process.env.STUB_EDIT_FILE), process.env.STUB_EDIT_TEXT ?? `edited by ${name}\n`);
if (process.env.STUB_SLEEP_MS) await new Promise((r) => setTimeout(r, Number(process.env.STUB_SLEEP_MS)));
const transcript = process.env.STUB_TRANSCRIPT ?? path.join(fixtures, defaults[name] ?? 'missing');
if (fs.existsSync(transcript)) process.stdout.write(fs.readFileSync(transcript));
if (process.env.STUB_STDERR) process.stderr.write(fs.readFileSync(process.env.STUB_STDERR));
process.exit(Number(process.env.STUB_EXIT ?? 0));
