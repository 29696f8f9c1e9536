#!/usr/bin/env node
// Thin launcher: everything lives in dist/ (built from lib/ by `npm install` / `npm run build`).
import { main } from '../dist/cli/main.js';

// A reader that goes away (`agent-async ls | head -1`) ends the command quietly, as a closed
// pipe ends any Unix tool, instead of an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}

await main();
