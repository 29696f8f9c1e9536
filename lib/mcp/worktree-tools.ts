import { z } from 'zod';
import { UserError } from '../errors.js';
import * as jobs from '../jobs.js';
import { inputs } from '../jobs.js';
import { defineTool, type ToolDefinition } from './tools.js';

/**
 * job_diff, job_apply, job_discard: what becomes of an isolated job's work, which ends as the
 * branch agent-async/<id> and the patch changes.patch in its job folder.
 */

const jobId = inputs.jobId.describe('The job_id of an ended job started with isolation "worktree".');
const changedFiles = z.array(z.looseObject({ path: z.string(), status: z.string() }));

export function worktreeTools(): ToolDefinition[] {
  return [
    defineTool({
      name: 'job_diff',
      group: 'generic',
      title: "Read an isolated job's changes",
      description: 'A page of the patch of an ended isolated job\'s changes (git diff --binary of its branch from where it started), and the changed files. Answers next_offset: call again with it to read on; null at the end. Pages are at most max_bytes (default 65536, at most 1048576).',
      input: z.strictObject({
        job_id: jobId,
        offset: inputs.diffInput.shape.offset.describe('Byte offset to start at (the next_offset of the previous page).'),
        max_bytes: inputs.diffInput.shape.max_bytes.describe(`Page size in bytes (1-${inputs.PATCH_PAGE_MAX}).`),
      }),
      output: z.looseObject({ job_id: z.string(), files: changedFiles, text: z.string(), offset: z.number(), next_offset: z.number().nullable(), total_bytes: z.number() }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => ({ ...(await jobs.diffJob(ctx.jobs, args)) }),
    }),
    defineTool({
      name: 'job_apply',
      group: 'generic',
      title: "Apply an isolated job's changes",
      description: "Apply an ended isolated job's changes to the work tree it was started from: a three-way merge with what is there now (your uncommitted edits stay), written to the files without staging or committing. When any file conflicts nothing at all is changed and the answer is an error naming the files (then inspect with job_diff, or discard with job_discard). Applying twice is refused.",
      input: z.strictObject({ job_id: jobId }),
      output: z.looseObject({ job_id: z.string(), applied: z.boolean(), files: z.array(z.string()), into: z.string(), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const { state, result } = await jobs.applyJob(ctx.jobs, args);
        if (result.kind === 'conflict') {
          throw new UserError('conflict', `job_id ${state.id}: its changes conflict with the work tree in ${result.files.join(', ')}; nothing was changed. Inspect them with job_diff, or discard them with job_discard.`, 'job_id');
        }
        const { files, into } = result.applied;
        return { job_id: state.id, applied: true, files, into, message: `Applied ${files.length} file(s) of job ${state.id} to ${into} (unstaged).` };
      },
    }),
    defineTool({
      name: 'job_discard',
      group: 'generic',
      title: "Discard an isolated job's changes",
      description: "Delete an ended isolated job's branch, refs and worktree: its work is gone. Use it for work you do not want; applied work needs no discard.",
      input: z.strictObject({ job_id: jobId }),
      output: z.looseObject({ job_id: z.string(), removed: z.array(z.string()), message: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
      taskCapable: false,
      handler: async (args, ctx) => {
        const { state, removed } = await jobs.discardJobChanges(ctx.jobs, args);
        return { job_id: state.id, removed, message: `Discarded the changes of job ${state.id}.` };
      },
    }),
  ];
}
