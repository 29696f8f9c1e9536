// Regenerates schema/state.schema.json from the zod schema in lib/spool/state.ts (run after `npm run build`).
import fs from 'node:fs';
import { stateJsonSchema } from '../dist/spool/state.js';

const target = new URL('../schema/state.schema.json', import.meta.url);
fs.writeFileSync(target, `${JSON.stringify(stateJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target.pathname}`);
