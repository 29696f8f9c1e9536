import { ConfigSource } from '../config.js';
import { isUserError } from '../errors.js';
import { defaultHome, ensureSpool, spoolPaths } from '../spool/layout.js';
import { packageVersion } from '../version.js';
import { clearStartingMarker } from './launch.js';
import { logLine } from './log-line.js';
import { Runner } from './runner.js';

/** Entry point of `agent-async runner` and of the runner that submits start in the background. */
export async function runnerMain(options: { quiet?: boolean } = {}): Promise<number> {
  const paths = spoolPaths(defaultHome());
  const log = (message: string): void => {
    if (!options.quiet) logLine(`${new Date().toISOString()} runner[${process.pid}] ${message}\n`);
  };
  let source;
  try {
    ensureSpool(paths);
    source = new ConfigSource(paths);
  } catch (error) {
    clearStartingMarker(paths);
    log(`cannot start: ${(error as Error).message}`);
    return isUserError(error) ? 78 : 70;
  }
  const runner = new Runner({ paths, config: source.lastGood, reloadConfig: () => source.current(), version: packageVersion(), log });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => runner.stop(`received ${signal}`));
  }
  await runner.run();
  return 0;
}
