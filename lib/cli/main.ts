import fs from 'node:fs';
import path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { POLICIES, configEnvName, configOrigins, configSchema } from '../config.js';
import { UserError } from '../errors.js';
import * as jobs from '../jobs.js';
import { JOB_STATUSES, inputs } from '../jobs.js';
import { packageVersion } from '../version.js';
import { optionalDuration } from './duration.js';
import { EXIT, exitForSnapshots } from './exit-codes.js';
import { action, openContext, print, printJson, snapshotJson, type Common } from './output.js';
import { JOB_COLUMNS, describeCommand, jobRows, stateDetails, statusLine, table } from './format.js';
import { followOutput, followQueueOutput, tailLinesOffset } from './logs.js';
import { strayWordsMessage, unknownFlagMessage } from './argv-check.js';
import { doctorCommand } from './doctor.js';
import { installCommands } from './install.js';
import { registerCommands } from './register.js';
import { queueCommands } from './queue.js';
import { statusCommand } from './status.js';
import { worktreeCommands } from './worktree.js';

/**
 * `agent-async`: the command-line face over `lib/jobs.ts`. Each command maps its flags onto
 * its operation's schema (inputs.ts), naming the flags in what it refuses.
 */

/** A job named by the `<id>` argument. */
const ID = { names: { job_id: 'id' } };
/** The flags `start` and `continue` map onto the submit and continue schemas. */
const JOB_FLAGS = { names: { job_id: 'id', approval_policy: 'policy', context_files: 'context-file', timeout_seconds: 'timeout', stall_seconds: 'stall-timeout', labels: 'label' } };

function reportWait(args: Common, result: jobs.WaitAllAnswer): number {
  if (args.json) {
    printJson({
      finished: result.settled.map(snapshotJson),
      open: result.open.map(snapshotJson),
      timed_out: result.timedOut,
    });
  } else {
    for (const snap of [...result.settled, ...result.open]) print(statusLine(snap));
    for (const notice of result.notices ?? []) process.stderr.write(`agent-async: ${notice}\n`);
    if (result.timedOut) process.stderr.write('agent-async: timed out waiting; the jobs keep running\n');
  }
  return exitForSnapshots(result.settled, result.timedOut);
}

interface StartArgs extends Common {
  agent: string;
  args?: string[];
  '--'?: string[];
  cwd?: string;
  policy?: string;
  model?: string;
  contextFile?: string | string[];
  promptFile?: string;
  timeout?: string;
  stallTimeout?: string;
  wait?: boolean;
  isolation?: string;
  base?: string;
  apply?: boolean;
  host?: string;
  label?: string | string[];
}

/** --host and --label (fleet mode): where a job may run. */
interface PlacementArgs {
  host?: string;
  label?: string | string[];
}

function placementFlags(args: PlacementArgs): { host?: string; labels?: string[] } {
  return { host: args.host, labels: args.label === undefined ? undefined : [args.label].flat().map(String) };
}

function placementOptions<T>(cmd: Argv<T>): Argv<T> {
  return cmd
    .option('host', { type: 'string', describe: 'fleet mode (queue_url set): run the job on this host (a runner\'s host_name); default: this host' })
    .option('label', { type: 'string', describe: 'fleet mode: run it only on a host whose runner has this label; repeat for more' });
}

/** The prompt of an agent job: --prompt-file (- = stdin), or the words after the agent. */
function promptFrom(args: { promptFile?: string; words: string[] }): string {
  if (args.promptFile !== undefined) {
    if (args.promptFile === '-') return fs.readFileSync(0, 'utf8');
    try {
      return fs.readFileSync(path.resolve(args.promptFile), 'utf8');
    } catch (error) {
      throw new UserError('bad_input', `prompt-file: cannot read ${JSON.stringify(args.promptFile)}: ${(error as Error).message}`, 'prompt-file');
    }
  }
  return args.words.join(' ');
}

function agentOptions<T>(cmd: Argv<T>): Argv<T> {
  return placementOptions(cmd)
    .option('policy', { alias: 'approval-policy', type: 'string', choices: POLICIES, describe: 'agents: suggest (read-only), auto-edit (edit the workspace), full-auto (no sandbox); default: config default_policy' })
    .option('model', { type: 'string', describe: "agents: the model to use (default: the CLI's own)" })
    .option('prompt-file', { type: 'string', describe: 'agents: read the prompt from this file (- = stdin)' })
    .option('timeout', { type: 'string', describe: 'wall-clock limit, e.g. 90s, 30m, 2h (default: config job_timeout_seconds)' })
    .option('wait', { type: 'boolean', default: false, describe: 'wait for the job to end and print its result (exec: the last 64 KiB of output; agents: the final message); exit code follows its status' });
}

async function reportStarted(ctx: jobs.JobsContext, args: Common & { wait?: boolean }, result: jobs.SubmitResult): Promise<number> {
  for (const notice of result.notices) process.stderr.write(`agent-async: ${notice}\n`);
  if (!args.wait) {
    if (args.json) printJson({ job_id: result.job_id, status: result.state.status, notices: result.notices, runner: result.runner });
    else print(result.job_id);
    return EXIT.ok;
  }
  if (!args.json) process.stderr.write(`${result.job_id} queued: ${describeCommand(result.state)}\n`);
  const outcome = await jobs.waitForEnd(ctx, [result.job_id], { any: false, totalSeconds: undefined });
  if (!args.json && result.state.request.agent === 'exec') await printOutputTail(ctx, result.job_id);
  const code = reportWait(args, outcome);
  const final = outcome.settled[0];
  if (!args.json && final?.kind === 'ok' && final.state.result?.final_message) print(final.state.result.final_message);
  return code;
}

const WAIT_OUTPUT_TAIL_BYTES = 64 * 1024;

/** What an exec job printed (its last 64 KiB), as if the command had run in the foreground. */
async function printOutputTail(ctx: jobs.JobsContext, id: string): Promise<void> {
  const page = await jobs.readTail(ctx, id, WAIT_OUTPUT_TAIL_BYTES);
  let data = page.data;
  if (page.offset > 0) {
    data = data.slice(data.indexOf('\n') + 1); // from a line start
    const hidden = page.size - Buffer.byteLength(data);
    process.stderr.write(`agent-async: … ${hidden} earlier bytes not shown (agent-async logs ${id})\n`);
  }
  process.stdout.write(data);
}

function startCommand(y: Argv, rawArgs: string[]): Argv {
  return y.command<StartArgs>(
    'start <agent> [args..]',
    'queue a job and print its id at once: `exec -- <command…>` runs a command (no shell); an agent takes a prompt',
    (cmd) =>
      agentOptions(cmd)
        .positional('agent', { type: 'string', describe: 'exec, codex, claude, gemini, cursor, or a custom agent from config.json' })
        .positional('args', { type: 'string', array: true, describe: 'exec: the command (after --); agents: the prompt' })
        .option('cwd', { type: 'string', describe: 'working directory (default: the current one)' })
        .option('context-file', { type: 'string', describe: 'agents: a file (relative to cwd) to inline into the prompt; repeat the option for more' })
        .option('stall-timeout', { type: 'string', describe: 'stop the job after this long without output' })
        .option('isolation', { type: 'string', describe: 'worktree: run in its own git worktree made from what the work tree holds now, the work coming back as a branch (see apply, diff, discard); none: in cwd itself (default: config isolation)' })
        .option('base', { type: 'string', describe: 'isolation worktree: start from this committed branch, tag or commit instead of the work tree' })
        .option('apply', { type: 'boolean', describe: 'isolation worktree: apply the changes to cwd when the job ends done' })
        .example('$0 start exec -- npm test', 'run the test suite in the background')
        .example('$0 start codex "add input validation to src/api.ts" --policy auto-edit', 'hand a task to Codex')
        .example('$0 start claude --prompt-file task.md --context-file src/app.ts --wait', 'a prompt from a file, waiting for the answer'),
    action(async (args) => {
      const ctx = openContext(args);
      const isExec = args.agent === 'exec';
      const afterDashes = args['--']?.map(String);
      const stray = isExec && afterDashes !== undefined ? strayWordsMessage((args.args ?? []).map(String), rawArgs) : undefined;
      if (stray) throw new UserError('bad_input', stray, 'argv');
      const words = [...(args.args ?? []), ...(afterDashes ?? [])].map(String);
      const input = jobs.parseInput(inputs.submitInput, {
        agent: args.agent,
        argv: isExec ? words : undefined,
        prompt: isExec ? undefined : promptFrom({ promptFile: args.promptFile, words }),
        cwd: args.cwd === undefined ? process.cwd() : path.resolve(args.cwd),
        approval_policy: args.policy as jobs.SubmitInput['approval_policy'],
        model: args.model,
        context_files: args.contextFile === undefined ? undefined : [args.contextFile].flat(),
        timeout_seconds: optionalDuration(args.timeout, 'timeout'),
        stall_seconds: optionalDuration(args.stallTimeout, 'stall-timeout'),
        isolation: args.isolation as jobs.SubmitInput['isolation'],
        base: args.base,
        apply: args.apply,
        ...placementFlags(args),
      }, JOB_FLAGS);
      return reportStarted(ctx, args, await jobs.submit(ctx, input));
    }),
  );
}

interface ContinueArgs extends Common, PlacementArgs {
  id: string;
  prompt?: string[];
  policy?: string;
  model?: string;
  promptFile?: string;
  timeout?: string;
  wait?: boolean;
}

function continueCommand(y: Argv): Argv {
  return y.command<ContinueArgs>(
    'continue <id> [prompt..]',
    "queue a new job that resumes an ended agent job's own session (same agent, same cwd) with a new prompt",
    (cmd) =>
      agentOptions(cmd)
        .positional('id', { type: 'string', describe: 'the job to continue' })
        .positional('prompt', { type: 'string', array: true, describe: 'the follow-up prompt' }),
    action(async (args) => {
      const ctx = openContext(args);
      const input = jobs.parseInput(inputs.continueInput, {
        job_id: args.id,
        prompt: promptFrom({ promptFile: args.promptFile, words: (args.prompt ?? []).map(String) }),
        approval_policy: args.policy as jobs.SubmitInput['approval_policy'],
        model: args.model,
        timeout_seconds: optionalDuration(args.timeout, 'timeout'),
        ...placementFlags(args),
      }, JOB_FLAGS);
      return reportStarted(ctx, args, await jobs.continueJob(ctx, input));
    }),
  );
}

interface WaitArgs extends Common {
  ids: string[];
  timeout?: string;
  any?: boolean;
}

function waitCommand(y: Argv): Argv {
  return y.command<WaitArgs>(
    'wait <ids..>',
    'wait until the jobs end (exit code: 0 done, 1 error, 4 cancelled, 124 timed out)',
    (cmd) =>
      cmd
        .positional('ids', { type: 'string', array: true, describe: 'job ids' })
        .option('timeout', { type: 'string', describe: 'give up after this long, e.g. 30s, 10m (default: wait until they end)' })
        .option('any', { type: 'boolean', default: false, describe: 'return as soon as any one ends (with every one ended by then)' }),
    action(async (args) => {
      const ctx = openContext(args);
      const ids: string[] = [];
      for (const [i, raw] of args.ids.entries()) ids.push((await jobs.findJob(ctx, { job_id: String(raw) }, { names: { job_id: `ids[${i}]` } })).id);
      return reportWait(args, await jobs.waitForEnd(ctx, ids, { any: Boolean(args.any), totalSeconds: optionalDuration(args.timeout, 'timeout') }));
    }),
  );
}

interface LsArgs extends Common {
  status?: string;
  limit?: number;
}

function lsCommand(y: Argv): Argv {
  return y.command<LsArgs>(
    ['ls', 'list'],
    'list the newest jobs',
    (cmd) =>
      cmd
        .option('status', { type: 'string', describe: `only jobs with this status: ${JOB_STATUSES.join(', ')}` })
        .option('limit', { type: 'number', default: inputs.LIST_DEFAULT, describe: `how many (1-${jobs.LIST_MAX})` }),
    action(async (args) => {
      const snaps = await jobs.listJobs(openContext(args), { limit: args.limit, status: args.status as jobs.JobStatus | undefined });
      if (args.json) printJson(snaps.map(snapshotJson));
      else if (snaps.length === 0) print('no jobs');
      else print(table(JOB_COLUMNS, jobRows(snaps), process.stdout.isTTY ? process.stdout.columns : undefined));
    }),
  );
}

interface IdArgs extends Common {
  id: string;
}

function showCommand(y: Argv): Argv {
  return y.command<IdArgs>(
    'show <id>',
    'show one job',
    (cmd) => cmd.positional('id', { type: 'string', describe: 'job id' }),
    action(async (args) => {
      const snap = await jobs.findJob(openContext(args), { job_id: args.id }, ID);
      if (args.json) printJson(snapshotJson(snap));
      else print(snap.kind === 'ok' ? stateDetails(snap.state) : statusLine(snap));
      return snap.kind === 'corrupt' ? EXIT.unreadable : EXIT.ok;
    }),
  );
}

interface LogsArgs extends IdArgs {
  follow?: boolean;
  tail?: number;
}

function logsCommand(y: Argv): Argv {
  return y.command<LogsArgs>(
    'logs <id>',
    "print a job's output (stdout and stderr)",
    (cmd) =>
      cmd
        .positional('id', { type: 'string', describe: 'job id' })
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new output until the job ends' })
        .option('tail', { type: 'number', describe: 'start with only the last N lines' }),
    action(async (args) => {
      const ctx = openContext(args);
      const id = (await jobs.findJob(ctx, { job_id: args.id }, ID)).id;
      if (args.tail !== undefined && (!Number.isInteger(args.tail) || args.tail < 0)) {
        throw new UserError('bad_input', `tail: must be a whole number of lines, 0 or more; got ${args.tail}`, 'tail');
      }
      const fleet = jobs.isFleet(ctx);
      const follow = fleet ? followQueueOutput : followOutput;
      await follow(ctx, id, {
        follow: Boolean(args.follow),
        start: args.tail === undefined ? 0 : await tailLinesOffset(ctx, id, args.tail),
        // --json: one object per page read (JSON lines), so a huge log streams as it does in text
        write: args.json
          ? (page) => process.stdout.write(`${JSON.stringify({ job_id: id, offset: page.offset, next_offset: page.next_offset, data: page.data })}\n`)
          : (page) => process.stdout.write(page.data),
      });
    }),
  );
}

function cancelCommand(y: Argv): Argv {
  return y.command<IdArgs>(
    'cancel <id>',
    'cancel a job: a pending one never starts; a running one is stopped (TERM, grace, KILL) with its whole process tree',
    (cmd) => cmd.positional('id', { type: 'string', describe: 'job id' }),
    action(async (args) => {
      const answer = await jobs.cancel(openContext(args), jobs.parseInput(inputs.jobRef, { job_id: args.id }, ID));
      if (args.json) printJson({ result: answer.result, job: answer.state });
      else if (answer.result === 'already_finished') print(`${answer.state.id} had already ended: ${answer.state.status}`);
      else if (answer.result === 'stopping') print(`${answer.state.id}: cancel requested; still stopping`);
      else print(`${answer.state.id} cancelled`);
      return answer.result === 'stopping' ? EXIT.timeout : EXIT.ok;
    }),
  );
}

interface RetryArgs extends IdArgs, PlacementArgs {
  wait?: boolean;
}

function retryCommand(y: Argv): Argv {
  return y.command<RetryArgs>(
    'retry <id>',
    'queue a new job with the same request as an earlier one',
    (cmd) =>
      placementOptions(cmd)
        .positional('id', { type: 'string', describe: 'job id to repeat' })
        .option('wait', { type: 'boolean', default: false, describe: 'wait for the new job to end' }),
    action(async (args) => {
      const ctx = openContext(args);
      const input = jobs.parseInput(inputs.retryInput, { job_id: args.id, ...placementFlags(args) }, JOB_FLAGS);
      return reportStarted(ctx, args, await jobs.retry(ctx, input));
    }),
  );
}

interface NotifyArgs extends IdArgs {
  summary?: string[];
}

function notifyCommand(y: Argv): Argv {
  return y.command<NotifyArgs>(
    ['notify-done <id> [summary..]', 'done <id> [summary..]'],
    'mark a running job finished with a summary (what a worker calls when its work is done)',
    (cmd) =>
      cmd
        .positional('id', { type: 'string', describe: 'job id (a worker finds its own in $AGENT_ASYNC_JOB_ID)' })
        .positional('summary', { type: 'string', array: true, describe: 'one-line summary' }),
    action(async (args) => {
      const input = jobs.parseInput(inputs.notifyInput, { job_id: args.id, summary: (args.summary ?? []).join(' ') }, ID);
      const answer = await jobs.notifyJobDone(openContext(args), input);
      if (args.json) printJson({ accepted: answer.accepted, message: answer.message, job_id: answer.state.id });
      else print(answer.message);
    }),
  );
}

function serveCommand(y: Argv): Argv {
  return y.command<Common & { tools?: string }>(
    'serve',
    'run the MCP server on stdio (what MCP client configs launch)',
    (cmd) => cmd.option('tools', { type: 'string', describe: 'expose only these tools or groups, comma-separated (codex, claude, gemini, cursor, generic, queue)' }),
    action(async (args) => {
      const tools = args.tools === undefined ? null : args.tools.split(',').map((t) => t.trim()).filter(Boolean);
      // loaded here only: the MCP SDK would add ~50 ms to every other command (workers run `done`)
      const { serveStdio } = await import('../mcp/server.js');
      await serveStdio({ tools });
    }),
  );
}

function runnerCommand(y: Argv): Argv {
  return y.command<Common & { quiet?: boolean }>(
    'runner',
    'run the job runner in the foreground (normally started on demand in the background)',
    (cmd) => cmd.option('quiet', { type: 'boolean', default: false, describe: 'log nothing' }),
    action(async (args) => {
      if (args.home) process.env.AGENT_ASYNC_HOME = args.home;
      const { runnerMain } = await import('../runner/runner-main.js');
      return runnerMain({ quiet: args.quiet });
    }),
  );
}

interface GcArgs extends Common {
  olderThan?: string;
  keep?: number;
  dryRun?: boolean;
  reindex?: boolean;
  branches?: boolean;
}

function gcCommand(y: Argv): Argv {
  return y.command<GcArgs>(
    'gc',
    'remove finished jobs (never pending or running ones)',
    (cmd) =>
      cmd
        .option('older-than', { type: 'string', describe: 'remove jobs that finished longer ago than this, e.g. 7d (default 7d when --keep is not given)' })
        .option('keep', { type: 'number', describe: 'keep only the newest N jobs (pending and running ones are never removed)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'only say what would be removed' })
        .option('reindex', { type: 'boolean', default: false, describe: 'rebuild index/ from jobs/ first' })
        .option('branches', { type: 'boolean', default: false, describe: 'also delete the branches of removed isolated jobs whose changes were neither applied nor discarded' }),
    action(async (args) => {
      const flags = { names: { older_than_seconds: 'older-than', dry_run: 'dry-run' } };
      const input = jobs.parseInput(inputs.gcInput, {
        older_than_seconds: optionalDuration(args.olderThan, 'older-than'),
        keep: args.keep,
        dry_run: args.dryRun,
        reindex: args.reindex,
        branches: args.branches,
      }, flags);
      const ctx = openContext(args);
      const report = await jobs.collectGarbage(ctx, input);
      const worktrees = await jobs.collectWorktrees(ctx.paths, { branches: input.branches, dryRun: input.dry_run });
      if (args.json) printJson({ ...report, worktrees });
      else {
        const verb = args.dryRun ? 'would remove' : 'removed';
        print(`${verb} ${report.removed.length} finished jobs; kept ${report.kept}; ${report.skipped_active} pending or running untouched`);
        for (const id of report.removed) print(`  ${id}`);
        if (report.unreadable.length > 0) print(`unreadable state.json, left alone: ${report.unreadable.join(', ')}`);
        if (typeof report.queue_removed === 'number') print(`removed ${report.queue_removed} finished jobs from the queue`);
        for (const { id, reason } of report.queue_kept ?? []) print(`kept ${id} in the queue: its refs on the remote could not be removed (gc tries again): ${reason}`);
        if (worktrees.removed.length > 0) print(`${verb} the branches and refs of ${worktrees.removed.length} isolated jobs`);
        for (const { id, reason } of worktrees.skipped) print(`left the branch and refs of ${id} alone: ${reason}`);
        if (worktrees.kept_branches.length > 0) print(`kept ${worktrees.kept_branches.length} branches with changes nobody applied or discarded (gc --branches removes them): ${worktrees.kept_branches.map((id) => `agent-async/${id}`).join(', ')}`);
      }
    }),
  );
}

function configCommand(y: Argv): Argv {
  return y.command<Common>(
    'config',
    'show the effective configuration and where each value comes from (default, config.json, environment, flag)',
    (cmd) => cmd,
    action((args) => {
      const ctx = openContext(args);
      const origins = configOrigins(ctx.paths, process.env);
      const homeOrigin = args.home !== undefined ? 'flag' : process.env.AGENT_ASYNC_HOME ? 'environment' : 'default';
      if (args.json) printJson({ home: ctx.paths.home, home_from: homeOrigin, config_file: ctx.paths.config, config: ctx.config, from: origins });
      else {
        print(`home         ${ctx.paths.home}  (${homeOrigin === 'flag' ? '--home' : homeOrigin === 'environment' ? 'AGENT_ASYNC_HOME' : 'default'})`);
        print(`config file  ${ctx.paths.config}${fs.existsSync(ctx.paths.config) ? '' : '  (absent: defaults)'}`);
        for (const [key, value] of Object.entries(ctx.config)) {
          const described = configSchema.shape[key as keyof typeof configSchema.shape]?.description ?? '';
          const origin = origins[key as keyof typeof origins] ?? 'default';
          const from = origin === 'environment' ? configEnvName(key) : origin;
          print(`${key.padEnd(24)} ${JSON.stringify(value).padEnd(8)} ${from.padEnd(11)} ${described}`);
        }
      }
    }),
  );
}

/** The command being parsed, and every flag name it knows (aliases too), for unknownFlagMessage. */
interface ParsedCommand {
  name: string;
  /** Its name and aliases, to find where it starts in the words. */
  names: string[];
  known: Set<string>;
}

/**
 * Makes every command's builder record the flags it knows, so a failed parse can say which
 * flag was unknown and what was meant (yargs reports a missing positional first).
 */
function recordingCommands(cli: Argv, parsed: { current?: ParsedCommand }): void {
  const command = cli.command.bind(cli) as (...args: unknown[]) => Argv;
  (cli as unknown as { command: (...args: unknown[]) => Argv }).command = (spec: unknown, description: unknown, builder: unknown, ...rest: unknown[]) => {
    if (typeof builder !== 'function') return command(spec, description, builder, ...rest);
    const names = [spec].flat().map((form) => String(form).split(' ')[0]!);
    const recording = (cmd: Argv): Argv => {
      const built = ((builder as (cmd: Argv) => Argv | void)(cmd) ?? cmd) as Argv & { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]> } };
      const options = built.getOptions();
      parsed.current = { name: names[0]!, names, known: new Set([...Object.keys(options.key), ...Object.values(options.alias).flat(), ...Object.keys(options.alias)]) };
      return built;
    };
    return command(spec, description, recording, ...rest);
  };
}

export function buildCli(argv: string[]): Argv {
  const parsed: { current?: ParsedCommand } = {};
  let cli: Argv = yargs(argv)
    .scriptName('agent-async')
    .usage('$0 <command> [options]\n\nHand work to background jobs that survive crashes and restarts.')
    .parserConfiguration({ 'populate--': true })
    .option('json', { type: 'boolean', describe: 'print machine-readable JSON', global: true })
    .option('home', { type: 'string', describe: 'spool folder (default $AGENT_ASYNC_HOME or ~/.agent-async)', global: true })
    .middleware((args) => {
      if (typeof args.home === 'string') process.env.AGENT_ASYNC_HOME = args.home;
    })
    .strict()
    .demandCommand(1, 'say which command to run; see --help')
    .recommendCommands()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .epilogue('Exit codes: 0 ok/done, 1 job error, 2 bad input, 3 no such job, 4 cancelled, 5 unreadable state, 6 apply conflict (nothing changed), 124 timed out, 70 internal error, 74 spool not writable (disk full, read-only), 78 bad config or spool root.')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((message, error) => {
      if (error) throw error;
      const command = parsed.current;
      const at = command ? argv.findIndex((word) => command.names.includes(word)) : -1;
      const meant = command && at >= 0 ? unknownFlagMessage(command.name, argv.slice(at), command.known) : undefined;
      process.stderr.write(`agent-async: ${meant ?? message}\nRun 'agent-async --help' for usage.\n`);
      process.exit(EXIT.badInput);
    });
  const commands = [
    startCommand, continueCommand, waitCommand, lsCommand, showCommand, logsCommand, cancelCommand, retryCommand, notifyCommand,
    serveCommand, runnerCommand, gcCommand, configCommand, registerCommands, installCommands, doctorCommand, statusCommand,
    worktreeCommands, queueCommands,
  ];
  recordingCommands(cli, parsed);
  for (const add of commands) {
    cli = add(cli, argv);
  }
  return cli;
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  await buildCli(argv).parseAsync();
}

