import path from 'node:path';
import type { Argv } from 'yargs';
import { probeAgents } from '../agents/probe.js';
import { CLIENT_NAMES, addClient, allClientStatus, parseClient, removeClient, serverCommand } from '../clients/clients.js';
import { parseLevel } from '../clients/permissions.js';
import { loadConfig } from '../config.js';
import { allTools } from '../mcp/tools.js';
import { autoUpdateEnabled, disableAutoUpdate, enableAutoUpdate } from '../install/schedule.js';
import { uninstall } from '../install/uninstall.js';
import { checkUpdate, describeCheck, update } from '../install/update.js';
import { defaultHome, spoolPaths } from '../spool/layout.js';
import { PACKAGE_ROOT } from '../version.js';
import * as jobs from '../jobs.js';
import { formatChecks, runDoctor } from './doctor.js';
import { EXIT } from './exit-codes.js';
import { table } from './format.js';
import { action, print, printJson, type Common } from './output.js';
import { buildFrame, renderFrame, runMonitor } from './status.js';

/**
 * Installing and registering: list-agents, add-agent, remove-agent, uninstall, update,
 * check-update and the auto-update schedule. None of these creates the spool's job folders.
 */

function home(args: Common): string {
  return spoolPaths(args.home ?? defaultHome()).home;
}

function width(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

function listAgentsCommand(y: Argv): Argv {
  return y.command<Common>(
    'list-agents',
    'show the worker agents (binary, installed, version) and the MCP clients (detected, registered, how)',
    (cmd) => cmd,
    action((args) => {
      const config = loadConfig(spoolPaths(home(args)));
      const workers = probeAgents(config);
      const clients = allClientStatus();
      if (args.json) {
        printJson({ workers, clients });
        return;
      }
      print('Worker agents (what jobs run):');
      print(table(
        [{ title: 'AGENT' }, { title: 'BINARY' }, { title: 'INSTALLED' }, { title: 'VERSION' }, { title: 'PATH / HOW TO INSTALL', flexible: true }],
        workers.map((p) => [p.agent, p.binary, p.agent === 'exec' ? 'built in' : p.installed ? 'yes' : 'no', p.version ?? '', p.installed ? p.path ?? p.description : `install: ${p.install_hint}`]),
        width(),
      ));
      print('');
      print('MCP clients (where the agent-async server is registered):');
      print(table(
        [{ title: 'CLIENT' }, { title: 'DETECTED' }, { title: 'REGISTERED' }, { title: 'VIA', flexible: true }],
        clients.map((c) => [c.client, c.detected ? 'yes' : 'no', c.registered ? 'yes' : 'no', c.note ?? (c.via ? `${c.method}: ${c.via}` : '')]),
        width(),
      ));
    }),
  );
}

interface ClientArgs extends Common {
  client: string;
  allowTools?: string;
  allowExecTools?: boolean;
}

function addAgentCommand(y: Argv): Argv {
  return y.command<ClientArgs>(
    'add-agent <client>',
    `register the MCP server with a client: ${CLIENT_NAMES.join(', ')}`,
    (cmd) =>
      cmd
        .positional('client', { type: 'string', describe: CLIENT_NAMES.join(', ') })
        .option('allow-tools', {
          type: 'string',
          describe: 'tools the client may call without asking: read (waits, lists, output), agents (also starting agent workers, full-auto refused; the default when no level is given), none. claude-code, codex, gemini; codex defaults to agents',
        })
        .option('allow-exec-tools', { type: 'boolean', describe: 'pre-approve every tool, agent_start (exec runs any command) and full-auto included' }),
    action((args) => {
      const client = parseClient(args.client);
      const flagged = args.allowTools !== undefined || args.allowExecTools;
      const tools = allTools().map((tool) => ({ name: tool.name, readOnly: tool.annotations.readOnlyHint }));
      const config = loadConfig(spoolPaths(home(args)));
      const result = addClient(client, home(args), process.env, {
        server: serverCommand(process.env, home(args)),
        level: flagged ? parseLevel(args.allowTools, args.allowExecTools, 'none') : undefined,
        tools,
        waitMaxSeconds: config.wait_max_seconds,
      });
      const notes = [...(result.notes ?? []), ...(result.changed ? [`restart ${client} (or open a new session) to load the change`] : [])];
      if (args.json) printJson({ ...result, server: serverCommand(process.env, home(args)), notes });
      else for (const line of [result.message, ...notes]) print(line);
    }),
  );
}

function removeAgentCommand(y: Argv): Argv {
  return y.command<ClientArgs>(
    'remove-agent <client>',
    'unregister the MCP server from a client (other entries of its config stay as they were)',
    (cmd) => cmd.positional('client', { type: 'string', describe: CLIENT_NAMES.join(', ') }),
    action((args) => {
      const result = removeClient(parseClient(args.client), home(args));
      if (args.json) printJson(result);
      else print(result.message);
    }),
  );
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
    action((args) => {
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
    action((args) => {
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
      action((args) => {
        const server = serverCommand();
        print(enableAutoUpdate({ node: server.command, launcher: path.join(PACKAGE_ROOT, 'bin', 'agent-async.js'), log: path.join(home(args), 'update.log') }));
      }),
    )
    .command<Common>(
      'disable-auto-update',
      'remove the daily update',
      (cmd) => cmd,
      action(() => {
        print(disableAutoUpdate());
        if (autoUpdateEnabled()) return EXIT.jobError;
        return EXIT.ok;
      }),
    );
}

function doctorCommand(y: Argv): Argv {
  return y.command<Common>(
    'doctor',
    'check node, the spool, the runner, the agent CLIs and the client registrations; say what to fix',
    (cmd) => cmd,
    action((args) => {
      const checks = runDoctor(home(args));
      const failed = checks.some((check) => check.level === 'fail');
      if (args.json) printJson({ ok: !failed, checks });
      else {
        print(formatChecks(checks));
        print(failed ? '\nSomething needs fixing (✗ above).' : '\nAll good.');
      }
      return failed ? EXIT.jobError : EXIT.ok;
    }),
  );
}

function statusCommand(y: Argv): Argv {
  return y.command<Common & { once?: boolean }>(
    'status',
    'live monitor of the runner and the jobs (q quits); --once prints one frame, --json the frame as JSON',
    (cmd) => cmd.option('once', { type: 'boolean', default: false, describe: 'print one frame and exit' }),
    action(async (args) => {
      const spool = jobs.openSpool({ home: args.home });
      if (args.json) {
        printJson(buildFrame(spool));
        return EXIT.ok;
      }
      if (args.once || !process.stdout.isTTY || !process.stdin.isTTY) {
        print(renderFrame(buildFrame(spool), process.stdout.columns || 100, { message: '' }).map((line) => line.trimEnd()).join('\n').trimEnd());
        return EXIT.ok;
      }
      await runMonitor(spool);
      return EXIT.ok;
    }),
  );
}

export function setupCommands(y: Argv): Argv {
  return [listAgentsCommand, addAgentCommand, removeAgentCommand, uninstallCommand, checkUpdateCommand, updateCommand, autoUpdateCommands, doctorCommand, statusCommand]
    .reduce((cli, add) => add(cli), y);
}
