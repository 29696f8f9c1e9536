import type { Argv } from 'yargs';
import { ConfigSource } from '../config.js';
import { isFleet, locateSpool, type JobsContext } from '../jobs.js';
import { EXIT } from './exit-codes.js';
import { action, print, printJson, type Common } from './output.js';

/**
 * `agent-async doctor`: checks what a working set-up needs and says what to fix. `ok` and
 * `warn` lines pass; any `fail` makes the command exit non-zero. The checks themselves
 * (doctor-checks.ts, which probe the CLIs and read the clients' configs) load only when it runs.
 */

export interface Check {
  level: 'ok' | 'warn' | 'fail';
  what: string;
  detail: string;
  fix?: string;
}

export function formatChecks(checks: Check[]): string {
  const mark = { ok: '✓', warn: '!', fail: '✗' };
  return checks
    .map((check) => `${mark[check.level]} ${check.what.padEnd(20)} ${check.detail}${check.fix && check.level !== 'ok' ? `\n  → ${check.fix}` : ''}`)
    .join('\n');
}

/** The last line: all good only when nothing failed and nothing warned. */
export function verdict(checks: readonly Check[]): string {
  const count = (level: Check['level']): number => checks.filter((check) => check.level === level).length;
  const failed = count('fail');
  const warned = count('warn');
  const warnings = `${warned} warning${warned === 1 ? '' : 's'} (! above)`;
  if (failed > 0) return `Something needs fixing (✗ above)${warned > 0 ? `; also ${warnings}` : ''}.`;
  if (warned > 0) return `It works, with ${warnings}.`;
  return 'All good.';
}

/** Fleet mode's checks (connection, schema, hosts, pending jobs); none without queue_url or with a broken config. */
async function queueChecks(args: Common): Promise<Check[]> {
  let ctx: JobsContext;
  try {
    // not openContext: doctor creates no spool
    const paths = locateSpool(args.home);
    const configSource = new ConfigSource(paths, process.env);
    ctx = { paths, config: configSource.lastGood, env: process.env, configSource };
  } catch {
    return []; // the config check above says what is wrong
  }
  if (!isFleet(ctx)) return [];
  const { fleetChecks } = await import('./fleet-checks.js');
  return fleetChecks(ctx);
}

export function doctorCommand(y: Argv): Argv {
  return y.command<Common>(
    'doctor',
    'check node, the spool, the runner, the agent CLIs and the client registrations; say what to fix',
    (cmd) => cmd,
    action(async (args) => {
      const { runDoctor } = await import('./doctor-checks.js');
      const checks = runDoctor(locateSpool(args.home).home);
      checks.push(...(await queueChecks(args)));
      const failed = checks.some((check) => check.level === 'fail');
      if (args.json) printJson({ ok: !failed, checks });
      else {
        print(formatChecks(checks));
        print(`\n${verdict(checks)}`);
      }
      return failed ? EXIT.jobError : EXIT.ok;
    }),
  );
}
