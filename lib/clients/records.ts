import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeJsonAtomic } from '../spool/fsx.js';
import { DIR_MODE } from '../spool/layout.js';
import { ALLOW_LEVELS } from './permissions.js';

/**
 * What agent-async added to client configs, kept in `<spool>/clients.json` so that
 * `remove-agent` and `uninstall` take back exactly that: the file it created, the backup it
 * made, the text it wrote (when the file is unchanged since, the original bytes come back).
 */

const fileEdit = z.object({
  file: z.string(),
  created_file: z.boolean(),
  created_dirs: z.array(z.string()),
  backup: z.string().nullable(),
  written_sha256: z.string(),
});
export type FileEdit = z.infer<typeof fileEdit>;

const registration = z.object({
  method: z.enum(['cli', 'file']),
  cli: z.string().nullable(),
  edit: fileEdit.nullable(),
  command: z.array(z.string()),
  at: z.string(),
  /** The tools pre-approved (see permissions.ts); absent in records written before levels. */
  level: z.enum(ALLOW_LEVELS).optional(),
  /** A hash of everything the registration wrote, so an unchanged one is not written again. */
  fingerprint: z.string().optional(),
});
export type Registration = z.infer<typeof registration>;

const recordsSchema = z.object({
  schema_version: z.literal(1),
  registrations: z.record(z.string(), registration),
  allow_tools: fileEdit.extend({ items: z.array(z.string()) }).nullable(),
});
export type Records = z.infer<typeof recordsSchema>;

export function recordsFile(home: string): string {
  return path.join(home, 'clients.json');
}

export function loadRecords(home: string): Records {
  const read = readJsonFile(recordsFile(home));
  if (read.kind === 'ok') {
    const parsed = recordsSchema.safeParse(read.value);
    if (parsed.success) return parsed.data;
  }
  return { schema_version: 1, registrations: {}, allow_tools: null };
}

export function saveRecords(home: string, records: Records): void {
  const file = recordsFile(home);
  if (Object.keys(records.registrations).length === 0 && records.allow_tools === null) {
    fs.rmSync(file, { force: true });
    try {
      fs.rmdirSync(home); // made only for this file: leave no empty spool behind
    } catch {
      // the spool holds more
    }
    return;
  }
  fs.mkdirSync(home, { recursive: true, mode: DIR_MODE });
  writeJsonAtomic(file, records);
}

export function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}
