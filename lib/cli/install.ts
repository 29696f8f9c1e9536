import path from 'node:path';
import type { Argv } from 'yargs';
import { locateSpool } from '../jobs.js';
import { PACKAGE_ROOT } from '../version.js';
import { EXIT } from './exit-codes.js';
import { action, print, printJson, type Common } from './output.js';

/** The install's own life: uninstall, update, check-update and the daily auto-update. None creates the spool. */

function home(args: Common): string {
  return locateSpool(args.home).home;
}

function uninstallCommand(y: Argv): Argv {
  return y.command<Common & { yes?: boolean; purge?: boolean }>(
    'uninstall',
    'remove everything the install added: registrations, tool permissions, the auto-update, the link, the files',
    (cmd) =>
      cmd
        .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask' })
        .option('purge', { type: 'boolean', default: false, describe: 'also remove the spool with its jobs' }),
    action(async (args) => {
      if (!args.yes && process.stdin.isTTY) {
        process.stdout.write(`Remove agent-async (${PACKAGE_ROOT}) and its client registrations? [y/N] `);
        const answer = await new Promise<string>((resolve) => process.stdin.once('data', (data) => resolve(String(data))));
        process.stdin.pause();
        if (!/^y/i.test(answer.trim())) return EXIT.ok;
      }
      const { uninstall } = await import('../install/uninstall.js');
      const report = await uninstall({ home: home(args), purge: Boolean(args.purge) });
      if (args.json) printJson(report);
      else {
        for (const step of report.steps) print(step);
        for (const kept of report.kept) print(`kept: ${kept}`);
      }
      return EXIT.ok;
    }),
  );
}

function checkUpdateCommand(y: Argv): Argv {
  return y.command<Common>(
    'check-update',
    'say whether a newer release exists (exit 0 up to date, 1 update available)',
    (cmd) => cmd,
    action(async (args) => {
      const { checkUpdate, describeCheck } = await import('../install/update.js');
      const check = checkUpdate();
      if (args.json) printJson(check);
      else print(describeCheck(check));
      return check.update_available ? 1 : EXIT.ok;
    }),
  );
}

function updateCommand(y: Argv): Argv {
  return y.command<Common>(
    'update',
    'move forward, built aside first (git installs: the newest vX.Y.Z tag, or the newest commit of the branch installed; npm installs: npm install -g)',
    (cmd) => cmd,
    action(async (args) => {
      const { update } = await import('../install/update.js');
      const result = update(PACKAGE_ROOT, (line) => process.stderr.write(`agent-async update: ${line}\n`));
      if (args.json) printJson(result);
      else print(`${new Date().toISOString()} ${result.message}`);
    }),
  );
}

function autoUpdateCommands(y: Argv): Argv {
  return y
    .command<Common>(
      'enable-auto-update',
      'update every day at 09:00 (cron on Linux, a LaunchAgent on macOS); output goes to <spool>/update.log',
      (cmd) => cmd,
      action(async (args) => {
        const [{ serverCommand }, { enableAutoUpdate }] = await Promise.all([import('../clients/clients.js'), import('../install/schedule.js')]);
        const server = serverCommand();
        print(enableAutoUpdate({ node: server.command, launcher: path.join(PACKAGE_ROOT, 'bin', 'agent-async.js'), log: path.join(home(args), 'update.log') }));
      }),
    )
    .command<Common>(
      'disable-auto-update',
      'remove the daily update',
      (cmd) => cmd,
      action(async () => {
        const { autoUpdateEnabled, disableAutoUpdate } = await import('../install/schedule.js');
        print(disableAutoUpdate());
        if (autoUpdateEnabled()) return EXIT.jobError;
        return EXIT.ok;
      }),
    );
}

export function installCommands(y: Argv): Argv {
  return [uninstallCommand, checkUpdateCommand, updateCommand, autoUpdateCommands].reduce((cli, add) => add(cli), y);
}
