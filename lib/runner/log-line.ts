import fs from 'node:fs';

let stderrIsFile: boolean | undefined;

/**
 * Writes a line to this process's stderr, which for a background runner or supervisor is
 * runner.log. A write that a full disk refuses loses that line, never the process: Node's
 * stream for a file would emit an 'error' nobody handles, and stop writing for good.
 */
export function logLine(text: string): void {
  stderrIsFile ??= fstatIsFile(2);
  if (!stderrIsFile) {
    process.stderr.write(text);
    return;
  }
  try {
    fs.writeSync(2, text);
  } catch {
    // the disk is full (or the log is gone): this line is lost
  }
}

function fstatIsFile(fd: number): boolean {
  try {
    return fs.fstatSync(fd).isFile();
  } catch {
    return false;
  }
}
