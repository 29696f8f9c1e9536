// Processes that start again and again are bundled: the runner and the supervisor (each submit
// that finds no runner, each pool slot), the CLI (every command a user or a script runs) and
// `serve` (every MCP client session). Loaded from dist/ they read ~150 modules (zod alone is 95)
// before doing anything; bundled they start with 30-50% less CPU. Each bundle replaces tsc's
// output of the same entry file, so every path that names one stays true; the modules they
// import stay in dist/ for everything else.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

/**
 * zod's namespace carries every locale (~450 kB, half of what a bundle parses at each start); we
 * use its default, English, only. Both zod entries that import the locale index get one that
 * holds English alone.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)[\\/]/.test(args.importer) ? { path: 'zod-locales-en', namespace: 'zod-english-only' } : undefined);
    build.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      resolveDir: ROOT,
    }));
  },
};

/**
 * tool-list.ts finds tool-list.json and the sources it stamps next to itself (import.meta.url):
 * it stays tsc's module beside dist/mcp/server.js, the only file that imports it.
 */
const toolListStaysBeside = {
  name: 'tool-list-stays-beside',
  setup(build) {
    build.onResolve({ filter: /^\.\/tool-list\.js$/ }, () => ({ path: './tool-list.js', external: true }));
  },
};

const COMMON = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  allowOverwrite: true,
  // pg-native: optional bindings that pg loads only when asked for; jsonc-parser: a UMD module
  // whose require() calls a bundler cannot follow (Node loads it as it loads it unbundled)
  external: ['pg-native', 'jsonc-parser'],
  // CommonJS dependencies (proper-lockfile, tree-kill) call require() for Node's own modules
  banner: { js: "import { createRequire as __aaCreateRequire } from 'node:module'; const require = __aaCreateRequire(import.meta.url);" },
  plugins: [zodEnglishOnly],
};

// The runner and the supervisor: one file each, nothing loaded later.
await Promise.all(['dist/runner/runner-entry.js', 'dist/runner/supervisor-main.js'].map((entry) => build({
  ...COMMON,
  entryPoints: [entry],
  outfile: entry,
})));

// chunks of an earlier build are named by their content: none may linger
fs.rmSync('dist/chunks', { recursive: true, force: true });

// The CLI and `serve` load most of their modules on demand (import()): split into chunks, so
// each command parses only what it runs. The CLI's import() of the server is that entry itself.
await build({
  ...COMMON,
  entryPoints: { 'cli/main': 'dist/cli/main.js', 'mcp/server': 'dist/mcp/server.js' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  plugins: [zodEnglishOnly, toolListStaysBeside],
});
