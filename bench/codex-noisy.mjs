#!/usr/bin/env node
// A stand-in for `codex exec --json` as a worker, for the orchestrator's bill: the stderr noise
// the real CLI prints, a long-ish stream of command items with their output, then (when the file
// `bill-gate` appears in its cwd) its final message and usage. The final message is $BILL_FINAL's text.
import fs from 'node:fs';

const out = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const noise = () => {
  process.stderr.write('WARNING: proceeding, even though we could not create PATH aliases: Read-only file system (os error 30) at /home/user/.codex/tmp/arg0\n');
  process.stderr.write('Reading additional input from stdin...\n');
};
for await (const chunk of process.stdin) void chunk; // codex reads stdin to EOF
noise();
out({ type: 'thread.started', thread_id: '019a7c1e-5b2d-7f10-9c44-2f6a1d3e8b90' });
out({ type: 'turn.started' });
const commands = ['rg -n "validate" src', 'sed -n 1,200p src/api.ts', 'npm test -- --runInBand', 'git diff --stat'];
for (let i = 0; i < 60; i += 1) {
  const command = `/bin/bash -lc '${commands[i % commands.length]}'`;
  out({ type: 'item.started', item: { id: `item_${i}`, type: 'command_execution', command, aggregated_output: '', exit_code: null, status: 'in_progress' } });
  const output = Array.from({ length: 30 }, (_, line) => `src/module${i}/file${line}.ts:${line + 1}: export function handler${line}(input: Request) {`).join('\n');
  out({ type: 'item.completed', item: { id: `item_${i}`, type: 'command_execution', command, aggregated_output: output, exit_code: 0, status: 'completed' } });
  if (i % 10 === 0) out({ type: 'item.completed', item: { id: `r_${i}`, type: 'reasoning', text: `**Checking the handlers**\n\nLooking at module ${i} for missing validation.` } });
}
out({ type: 'item.started', item: { id: 'item_last', type: 'command_execution', command: "/bin/bash -lc 'npm test -- --runInBand'", aggregated_output: '', exit_code: null, status: 'in_progress' } });
noise();
while (!fs.existsSync('bill-gate')) await new Promise((resolve) => setTimeout(resolve, 50));
out({ type: 'item.completed', item: { id: 'item_msg', type: 'agent_message', text: fs.readFileSync(process.env.BILL_FINAL, 'utf8') } });
out({ type: 'turn.completed', usage: { input_tokens: 812_340, cached_input_tokens: 701_112, output_tokens: 9_876, reasoning_output_tokens: 4_321 } });
