import type { Argv } from 'yargs';
import { CLIENT_NAMES } from '../clients/names.js';
import { loadConfig } from '../config.js';
import { locateSpool } from '../jobs.js';
import { table } from './format.js';
import { action, print, printJson, type Common } from './output.js';

/**
 * Registering the MCP server with clients (the MCP clients that launch it: Claude Code,
 * Codex, Cursor, …) and listing the workers (the agent CLIs that jobs run). The commands keep
 * their names (`add-agent <client>`, `remove-agent <client>`, `list-agents`).
 */

function width(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

/** `list-agents`: the workers (what jobs run) and the clients (where the server is registered). */
function listWorkersAndClientsCommand(y: Argv): Argv {
  return y.command<Common>(
    'list-agents',
    'show the worker agents (binary, installed, version) and the MCP clients (detected, registered, how)',
    (cmd) => cmd,
    action(async (args) => {
      const [{ probeAgents }, { allClientStatus }] = await Promise.all([import('../agents/probe.js'), import('../clients/clients.js')]);
      const config = loadConfig(locateSpool(args.home));
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

/** `add-agent <client>`: the command keeps its old name; what it registers with is a client. */
function addClientCommand(y: Argv): Argv {
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
        .option('allow-exec-tools', { type: 'boolean', describe: 'pre-approve every tool, agent_start and job_retry (exec runs any command) and full-auto included' }),
    action(async (args) => {
      const [{ addClient, parseClient, serverCommand }, { parseLevel }, { allTools }] = await Promise.all([
        import('../clients/clients.js'), import('../clients/permissions.js'), import('../mcp/tools.js'),
      ]);
      const client = parseClient(args.client);
      const paths = locateSpool(args.home);
      const home = paths.home;
      const flagged = args.allowTools !== undefined || args.allowExecTools;
      const tools = allTools().map((tool) => ({ name: tool.name, readOnly: tool.annotations.readOnlyHint }));
      const config = loadConfig(paths);
      const server = serverCommand(process.env, home);
      const result = addClient(client, home, process.env, {
        server,
        level: flagged ? parseLevel(args.allowTools, args.allowExecTools, 'none') : undefined,
        tools,
        waitMaxSeconds: config.wait_max_seconds,
      });
      const notes = [...(result.notes ?? []), ...(result.changed ? [`restart ${client} (or open a new session) to load the change`] : [])];
      if (args.json) printJson({ ...result, server, notes });
      else for (const line of [result.message, ...notes]) print(line);
    }),
  );
}

function removeClientCommand(y: Argv): Argv {
  return y.command<ClientArgs>(
    'remove-agent <client>',
    'unregister the MCP server from a client (other entries of its config stay as they were)',
    (cmd) => cmd.positional('client', { type: 'string', describe: CLIENT_NAMES.join(', ') }),
    action(async (args) => {
      const { parseClient, removeClient } = await import('../clients/clients.js');
      const result = removeClient(parseClient(args.client), locateSpool(args.home).home);
      if (args.json) printJson(result);
      else print(result.message);
    }),
  );
}

export function registerCommands(y: Argv): Argv {
  return [listWorkersAndClientsCommand, addClientCommand, removeClientCommand].reduce((cli, add) => add(cli), y);
}
