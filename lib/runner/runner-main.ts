import { ConfigSource } from '../config.js';
import { defaultHome, ensureSpool, spoolPaths } from '../spool/layout.js';
import { packageVersion } from '../version.js';
import { clearStartingMarker } from './launch.js';
import { Runner } from './runner.js';

/** Entry point of `agent-async runner` and of the runner that submits start in the background. */
export async function runnerMain(options: { quiet?: boolean } = {}): Promise<number> {
  const paths = spoolPaths(defaultHome());
  ensureSpool(paths);
  const log = (message: string): void => {
    if (!options.quiet) process.stderr.write(`${new Date().toISOString()} runner[${process.pid}] ${message}\n`);
  };
  let source;
  try {
    source = new ConfigSource(paths);
  } catch (error) {
    clearStartingMarker(paths);
    log(`cannot start: ${(error as Error).message}`);
    return 78;
  }
  const runner = new Runner({ paths, config: source.lastGood, reloadConfig: () => source.current(), version: packageVersion(), log });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => runner.stop(`received ${signal}`));
  }
  await runner.run();
  return 0;
}
