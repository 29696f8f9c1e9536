import type { Argv } from 'yargs';
import * as jobs from '../jobs.js';
import { EXIT } from './exit-codes.js';
import { action, openContext, print, printJson, type Common } from './output.js';

/** `apply`, `diff`, `discard`: what becomes of an isolated job's work (its branch agent-async/<id>). */

const ID = { names: { job_id: 'id' } };

interface IdArgs extends Common {
  id: string;
}

interface DiffArgs extends IdArgs {
  offset?: number;
  maxBytes?: number;
  all?: boolean;
}

function applyCommand(y: Argv): Argv {
  return y.command<IdArgs>(
    'apply <id>',
    "apply an ended isolated job's changes to the work tree it was started from (unstaged, uncommitted); a conflict changes nothing (exit 6)",
    (cmd) => cmd.positional('id', { type: 'string', describe: 'job id' }),
    action(async (args) => {
      const answer = await jobs.applyJob(openContext(args), { job_id: args.id }, ID);
      const { result } = answer;
      if (args.json) printJson(result.kind === 'applied' ? { applied: result.applied } : { conflict: { files: result.files, messages: result.messages } });
      if (result.kind === 'conflict') {
        process.stderr.write(`agent-async: the changes of ${answer.state.id} conflict with the work tree in ${result.files.length} file(s); nothing was changed:\n${result.files.map((file) => `  ${file}\n`).join('')}`);
        return EXIT.applyConflict;
      }
      if (!args.json) print(`applied ${result.applied.files.length} file(s) to ${result.applied.into}: ${result.applied.files.join(', ')}`);
      return EXIT.ok;
    }),
  );
}

function diffCommand(y: Argv): Argv {
  return y.command<DiffArgs>(
    'diff <id>',
    "print an ended isolated job's changes as a patch (git diff --binary of its branch)",
    (cmd) =>
      cmd
        .positional('id', { type: 'string', describe: 'job id' })
        .option('offset', { type: 'number', describe: 'start at this byte (the next_offset of a --json page)' })
        .option('max-bytes', { type: 'number', describe: 'one page of at most this many bytes (default: the whole patch)' }),
    action(async (args) => {
      const ctx = openContext(args);
      const names = { names: { job_id: 'id', max_bytes: 'max-bytes' } };
      let page = await jobs.diffJob(ctx, { job_id: args.id, offset: args.offset, max_bytes: args.maxBytes }, names);
      if (args.json) return printJson(page);
      process.stdout.write(page.text);
      // without --max-bytes the whole patch, page after page
      while (args.maxBytes === undefined && page.next_offset !== null) {
        page = await jobs.diffJob(ctx, { job_id: args.id, offset: page.next_offset }, names);
        process.stdout.write(page.text);
      }
    }),
  );
}

function discardCommand(y: Argv): Argv {
  return y.command<IdArgs>(
    'discard <id>',
    "delete an ended isolated job's branch, refs and worktree (its work is gone)",
    (cmd) => cmd.positional('id', { type: 'string', describe: 'job id' }),
    action(async (args) => {
      const answer = await jobs.discardJobChanges(openContext(args), { job_id: args.id }, ID);
      if (args.json) printJson({ job_id: answer.state.id, removed: answer.removed });
      else print(`discarded the changes of ${answer.state.id}${answer.removed.length > 0 ? ` (removed ${answer.removed.join(', ')})` : ' (nothing was left)'}`);
    }),
  );
}

export function worktreeCommands(y: Argv): Argv {
  return discardCommand(diffCommand(applyCommand(y)));
}
