import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JobNotes, LineSplitter, OutputSink, openOutputLog } from '../lib/runner/worker-io.js';

/**
 * The worker's output pipes are read into one buffer reused for every read: what the splitter
 * and the sink keep of a read must be copies, or the next read rewrites it.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-worker-io-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Pushes each part as a view of the same buffer, overwritten after each push. */
function pushThroughOneBuffer(splitter: LineSplitter, parts: string[]): void {
  const reused = Buffer.alloc(64);
  for (const part of parts) {
    splitter.push(reused.subarray(0, reused.write(part)));
    reused.fill('z');
  }
}

describe('LineSplitter', () => {
  it('keeps copies of an unfinished line: the buffer its chunks are views of may be reused', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    pushThroughOneBuffer(splitter, ['ab', 'cd\nef', 'gh', '\n\nij', 'k']);
    splitter.end();
    expect(lines).toEqual(['abcd', 'efgh', '', 'ijk']);
  });

  it('drops a line longer than its cap whole, keeps one at the cap, and goes on', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), 4);
    pushThroughOneBuffer(splitter, ['abc', 'de', 'fgh\nwxyz\n', 'abcd', 'e']);
    splitter.end();
    expect(lines).toEqual(['wxyz']);
    expect(splitter.dropped).toBe(2);
  });
});

describe('OutputSink', () => {
  it('writes a line the worker printed in pieces whole to output.log and to the parser, the last one unfinished too', async () => {
    const log = path.join(dir, 'output.log');
    const lines: string[] = [];
    const sink = new OutputSink(openOutputLog(log), new JobNotes(path.join(dir, 'notes.log')), (line, stream) => lines.push(`${stream}: ${line}`));
    // the pauses make separate reads of the same buffer
    const script = 'echo err >&2; printf abc; sleep 0.05; printf "def\\ngh"; sleep 0.05; printf i';
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    await sink.attach(child);
    sink.close();
    const written = fs.readFileSync(log, 'utf8');
    expect(written.split('\n').sort()).toEqual(['abcdef', 'err', 'ghi']);
    expect(written.replace('err\n', '')).toBe('abcdef\nghi');
    expect(lines.sort()).toEqual(['stderr: err', 'stdout: abcdef', 'stdout: ghi']);
    expect(sink.bytes).toBe(14);
  });
});
