import { ConfigSource, type Config } from './config.js';
import { defaultHome, ensureSpool, spoolPaths, type SpoolPaths } from './spool/layout.js';

export { spoolSpaceError } from './spool/fsx.js';

/**
 * The context every operation of `lib/jobs.ts` works in, opened without loading the
 * operations: the MCP server answers `initialize` and `tools/list` with this alone, and loads
 * `lib/jobs.ts` on its first tool call. `lib/jobs.ts` re-exports it.
 */

/** What every operation works in: the spool's paths, the configuration, the environment. */
export interface JobsContext {
  paths: SpoolPaths;
  config: Config;
  env: NodeJS.ProcessEnv;
  /** Where `config` comes from; `refreshConfig` re-reads it after an edit. */
  configSource: ConfigSource;
  /** The MCP face: jobs it starts are held to config `mcp_max_policy`. */
  capPolicy?: boolean;
}

/** The spool a command works on: --home, else $AGENT_ASYNC_HOME, else ~/.agent-async. */
export function spoolHome(env: NodeJS.ProcessEnv = process.env): string {
  return spoolPaths(defaultHome(env)).home;
}

/** The spool's folders for `home` (default $AGENT_ASYNC_HOME or ~/.agent-async), without touching the disk. */
export function locateSpool(home?: string, env: NodeJS.ProcessEnv = process.env): SpoolPaths {
  return spoolPaths(home ?? defaultHome(env));
}

export function openContext(options: { home?: string; env?: NodeJS.ProcessEnv; capPolicy?: boolean } = {}): JobsContext {
  const env = options.env ?? process.env;
  const paths = locateSpool(options.home, env);
  ensureSpool(paths);
  const configSource = new ConfigSource(paths, env);
  return { paths, config: configSource.lastGood, env, configSource, capPolicy: options.capPolicy ?? false };
}

/**
 * Picks up an edited config.json in a long-lived process (the MCP server): one stat per call.
 * A config that became invalid keeps the last good one and throws the error for this call.
 */
export function refreshConfig(ctx: JobsContext): void {
  ctx.config = ctx.configSource.current();
}
