#!/usr/bin/env node
// Thin launcher: everything lives in dist/ (built from lib/ by `npm install` / `npm run build`).
import { main } from '../dist/cli/main.js';

await main();
