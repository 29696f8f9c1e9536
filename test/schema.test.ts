import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stateJsonSchema } from '../lib/spool/state.js';
import { ROOT } from './helpers/spool.js';

describe('schema/state.schema.json', () => {
  it('is the schema the code validates with (regenerate with `npm run schema`)', () => {
    const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'state.schema.json'), 'utf8'));
    expect(shipped).toEqual(stateJsonSchema());
  });

  it('ships in the package', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.files).toContain('schema/');
  });
});
