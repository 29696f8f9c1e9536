import { z } from 'zod';
import { UserError } from './errors.js';
import { readJsonFile } from './spool/fsx.js';
import type { SpoolPaths } from './spool/layout.js';

/**
 * `config.json` in the spool root, every key optional. Environment variables override it
 * (`AGENT_ASYNC_<KEY in upper case>`, e.g. `AGENT_ASYNC_CONCURRENCY=4`), and CLI flags or tool
 * arguments override both for one job.
 */
export const configSchema = z.object({
  concurrency: z.number().int().min(1).max(64).default(1)
    .describe('jobs that may run at once'),
  exclusive_cwd: z.boolean().default(true)
    .describe('never run two jobs with the same cwd side by side'),
  runner_idle_seconds: z.number().min(1).max(86_400).default(60)
    .describe('the runner exits after this long with no pending or running job'),
  job_timeout_seconds: z.number().positive().max(7 * 86_400).default(3 * 3600)
    .describe('default wall-clock limit of a job'),
  max_job_timeout_seconds: z.number().positive().max(30 * 86_400).default(7 * 86_400)
    .describe('largest wall-clock limit a job may ask for; larger requests are clamped'),
  stall_timeout_seconds: z.number().positive().nullable().default(null)
    .describe('end a job that writes no output for this long; null = never'),
  kill_grace_seconds: z.number().min(0).max(600).default(5)
    .describe('time between TERM and KILL when a job is stopped'),
  done_grace_seconds: z.number().min(0).max(3600).default(10)
    .describe('time a worker may keep running after it reported done'),
  wait_max_seconds: z.number().min(1).max(3600).default(55)
    .describe('longest single wait call; larger requests are clamped'),
  poll_seconds: z.number().min(0.05).max(60).default(1)
    .describe('safety re-read interval of waits and of the runner'),
  tmp_max_age_seconds: z.number().min(60).default(3600)
    .describe('temp files older than this are swept'),
});
export type Config = z.infer<typeof configSchema>;

const NUMERIC_KEYS = new Set(
  Object.entries(configSchema.shape)
    .filter(([, schema]) => {
      const inner = schema.def.innerType;
      return inner instanceof z.ZodNumber || (inner instanceof z.ZodNullable && inner.def.innerType instanceof z.ZodNumber);
    })
    .map(([key]) => key),
);

function fromEnvironment(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const raw = env[`AGENT_ASYNC_${key.toUpperCase()}`];
    if (raw === undefined || raw === '') continue;
    if (NUMERIC_KEYS.has(key)) values[key] = raw === 'null' ? null : Number(raw);
    else if (raw === 'true' || raw === 'false') values[key] = raw === 'true';
    else values[key] = raw;
  }
  return values;
}

function describeIssue(issue: z.core.$ZodIssue, source: string): string {
  const field = issue.path.join('.') || '(root)';
  return `${source}: ${field}: ${issue.message}`;
}

export function loadConfig(paths: SpoolPaths, env: NodeJS.ProcessEnv = process.env): Config {
  const file = readJsonFile<Record<string, unknown>>(paths.config);
  if (file.kind === 'corrupt') {
    throw new UserError('config_invalid', `${paths.config}: ${file.reason}`, 'config.json');
  }
  const fromFile = file.kind === 'ok' ? file.value : {};
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
    throw new UserError('config_invalid', `${paths.config}: must be a JSON object`, 'config.json');
  }
  const unknown = Object.keys(fromFile).filter((key) => !(key in configSchema.shape));
  if (unknown.length > 0) {
    throw new UserError(
      'config_invalid',
      `${paths.config}: unknown key ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${Object.keys(configSchema.shape).join(', ')}`,
      'config.json',
    );
  }
  const fileCheck = configSchema.safeParse(fromFile);
  if (!fileCheck.success) {
    throw new UserError('config_invalid', describeIssue(fileCheck.error.issues[0]!, paths.config), 'config.json');
  }
  const merged = configSchema.safeParse({ ...fromFile, ...fromEnvironment(env) });
  if (!merged.success) {
    throw new UserError('config_invalid', describeIssue(merged.error.issues[0]!, 'environment (AGENT_ASYNC_*)'), 'env');
  }
  return merged.data;
}
