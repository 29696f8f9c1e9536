import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { UserError, errnoCode, quoteInput } from '../errors.js';
import { PATCH_PAGE_DEFAULT, PATCH_PAGE_MAX, parseField, wholeNumber } from '../inputs.js';
import { entryKindOf } from '../spool/fsx.js';

/**
 * Pages of a job's `changes.patch` (`job_diff`): a byte offset and a size limit. A page ends
 * after its last whole line when it has one, otherwise on a character boundary, so text is
 * never cut inside a UTF-8 character; `next_offset` continues exactly there.
 */

export const DEFAULT_PAGE_BYTES = PATCH_PAGE_DEFAULT;
export const MAX_PAGE_BYTES = PATCH_PAGE_MAX;

export interface PatchPage {
  text: string;
  offset: number;
  /** Where the next page starts; null at the end of the patch. */
  next_offset: number | null;
  total_bytes: number;
}

export async function readPatchPage(file: string, offset: unknown = 0, maxBytes: unknown = DEFAULT_PAGE_BYTES): Promise<PatchPage> {
  const start = validateOffset(offset);
  const limit = parseField(wholeNumber(1, MAX_PAGE_BYTES), maxBytes ?? DEFAULT_PAGE_BYTES, 'max_bytes');
  const handle = await openPatch(file);
  try {
    const total = (await handle.stat()).size;
    if (start > total) throw new UserError('bad_input', `offset: ${start} is beyond the end of the patch (${total} bytes)`, 'offset');
    // up to 3 bytes more, so that a character larger than a tiny page can still be given whole
    const buffer = Buffer.alloc(Math.min(limit + 3, total - start));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const length = start + Math.min(bytesRead, limit) >= total ? total - start : pageEnd(buffer.subarray(0, bytesRead), limit);
    const next = start + length;
    return { text: buffer.subarray(0, length).toString('utf8'), offset: start, next_offset: next >= total ? null : next, total_bytes: total };
  } finally {
    await handle.close();
  }
}

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * The patch, opened only if it is a regular file (it lies in the job folder, which the worker
 * could write): looked at without following a link first, so a device is never opened;
 * O_NOFOLLOW and O_NONBLOCK cover a swap in between, and what was opened is checked again.
 */
async function openPatch(file: string): Promise<fsp.FileHandle> {
  const refuse = (kind: string): UserError => new UserError('corrupt_state', `job_id: the job's changes.patch is a ${kind}, not a regular file, so it is not read (${file})`, 'job_id');
  let handle: fsp.FileHandle;
  try {
    const seen = await fsp.lstat(file);
    if (!seen.isFile()) throw refuse(entryKindOf(seen));
    handle = await fsp.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new UserError('not_found', 'job_id: this job has no patch (it was not isolated, has not ended yet, or its changes were discarded)', 'job_id');
    if (errnoCode(error) === 'ELOOP') throw refuse('symbolic link');
    throw error;
  }
  const opened = await handle.stat();
  if (opened.isFile()) return handle;
  await handle.close();
  throw refuse(entryKindOf(opened));
}

/**
 * How many of `bytes` a page of at most `limit` bytes takes: up to its last newline, else up
 * to its last whole character; a first character wider than the page is given whole.
 */
export function pageEnd(bytes: Buffer, limit: number): number {
  const page = bytes.subarray(0, limit);
  const newline = page.lastIndexOf(0x0a);
  if (newline >= 0) return newline + 1;
  const whole = wholeCharacters(page);
  return whole > 0 ? whole : Math.min(bytes.length, utf8Width(bytes[0]!));
}

/** The length of `bytes` without a character cut off at its end. */
function wholeCharacters(bytes: Buffer): number {
  let lead = bytes.length - 1;
  // step back over continuation bytes (10xxxxxx) to the lead byte of the last character
  while (lead > 0 && lead > bytes.length - 4 && (bytes[lead]! & 0xc0) === 0x80) lead -= 1;
  if (lead < 0) return 0;
  return lead + utf8Width(bytes[lead]!) > bytes.length ? lead : bytes.length;
}

function utf8Width(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

function validateOffset(value: unknown): number {
  if (value === undefined || value === null) return 0;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number === 'number' && Number.isSafeInteger(number) && number >= 0) return number;
  throw new UserError('bad_input', `offset: must be a whole number of bytes from 0 (the next_offset of the previous page); got ${quoteInput(value)}`, 'offset');
}
