// Cold start of an MCP stdio server: launched → its answer to `initialize`, then → its answer to
// `tools/list`. Raw JSON-RPC lines over the pipes (no client library in between), so the figure
// is the server's own start-up. Usage: node bench/cold-start.mjs <runs> -- <node args…>
// Prints one JSON line per run: {"initialize_ms":…,"tools_list_ms":…,"tools":N}.
import { spawn } from 'node:child_process';

const now = () => performance.timeOrigin + performance.now();
const runs = Number(process.argv[2]);
const nodeArgs = process.argv.slice(process.argv.indexOf('--') + 1);

function once() {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(process.execPath, nodeArgs, { stdio: ['pipe', 'pipe', 'ignore'], env: process.env });
    const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
    let buffer = '';
    const times = {};
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answer within 30 s from node ${nodeArgs.join(' ')}`));
    }, 30_000);
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (let cut = buffer.indexOf('\n'); cut !== -1; cut = buffer.indexOf('\n')) {
        const message = JSON.parse(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 1);
        if (message.id === 1) {
          times.initialize_ms = now() - t0;
          send({ method: 'notifications/initialized' });
          send({ id: 2, method: 'tools/list', params: {} });
        } else if (message.id === 2) {
          times.tools_list_ms = now() - t0;
          times.tools = message.result?.tools?.length ?? 0;
          clearTimeout(timer);
          child.stdin.end();
          child.once('exit', () => resolve(times));
        }
      }
    });
    // what codex and gemini send first (Claude Code probes server/discover before it)
    send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  });
}

for (let i = 0; i < runs; i += 1) process.stdout.write(`${JSON.stringify(await once())}\n`);
