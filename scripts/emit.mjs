// The JavaScript of lib/ into dist/, one file per module as `tsc -p tsconfig.build.json` emits it,
// in a fraction of a second: `npm test` runs this in place of tsc's emit (its own type check
// step checks everything). `isolatedModules` in tsconfig.json makes tsc refuse what a
// per-file transpiler would get wrong (a type re-exported as a value), so both outputs run alike.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LIB = path.join(ROOT, 'lib');

const sources = fs.readdirSync(LIB, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
  .map((file) => path.join(LIB, file));

await build({
  entryPoints: sources,
  outdir: path.join(ROOT, 'dist'),
  outbase: LIB,
  bundle: false,
  platform: 'node',
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
});
