#!/usr/bin/env node
// Thin launcher: everything lives in dist/ (built from lib/ by `npm install` / `npm run build`).

// A reader that goes away (`agent-async ls | head -1`) ends the command quietly, as a closed
// pipe ends any Unix tool, instead of an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}

// `serve` (what MCP clients launch, and wait on before their first model request) skips the
// command-line parser and every other command: a client gets `initialize` answered sooner.
const args = process.argv.slice(2);
const { serveArgs } = await import('../dist/mcp/serve-args.js');
const serve = serveArgs(args);
if (serve) {
  const { serveMain } = await import('../dist/mcp/server.js');
  await serveMain(serve);
} else {
  const { main } = await import('../dist/cli/main.js');
  await main();
}
