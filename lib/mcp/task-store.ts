import type { Request, RequestId, Result, Task } from '@modelcontextprotocol/sdk/types.js';
import type { CreateTaskOptions, TaskStore } from '@modelcontextprotocol/sdk/experimental/tasks';
import { z } from 'zod';
import type { JobsContext } from '../context.js';
import type { JobSnapshot, JobState, SpoolPaths } from '../jobs.js';
import { jobs, loadJobs } from './lazy-jobs.js';
import { snapshotAnswer } from './results.js';

/**
 * MCP Tasks (2025-11-25) backed by the spool: a task is a job, its id the job id, its status
 * the job's. Nothing lives in server memory, so tasks/get, tasks/result, tasks/list and
 * tasks/cancel work from any server process and across restarts; tasks/cancel really stops
 * the worker. `task.json` in the job folder marks a job created as a task and keeps its ttl.
 */

export const TASK_FILE = 'task.json';
export const TASK_POLL_MS = 1000;
const LIST_PAGE = 50;
const LIST_SCAN_LIMIT = 5000;

const taskRecord = z.object({ ttl: z.number().nullable(), tool: z.string(), created_at: z.string() });
type TaskRecord = z.infer<typeof taskRecord>;

function readRecord(paths: SpoolPaths, id: string): TaskRecord | null {
  const parsed = taskRecord.safeParse(jobs.readSideFile(paths, id, TASK_FILE));
  return parsed.success ? parsed.data : null;
}

export function markAsTask(paths: SpoolPaths, id: string, tool: string, ttl: number | null): void {
  jobs.writeSideFile(paths, id, TASK_FILE, { ttl, tool, created_at: new Date().toISOString() });
}

/** Fleet mode keeps no task records: the job's folder is on the host that runs it, if any. */
function recordOf(ctx: JobsContext, id: string): TaskRecord | null {
  return jobs.isFleet(ctx) ? null : readRecord(ctx.paths, id);
}

const TASK_STATUS: Record<JobState['status'], Task['status']> = {
  pending: 'working',
  running: 'working',
  done: 'completed',
  error: 'failed',
  cancelled: 'cancelled',
};

export function taskOf(state: JobState, record: TaskRecord | null): Task {
  const message = state.error ? `${state.error.code}: ${state.error.message}` : `job ${state.status}`;
  return {
    taskId: state.id,
    status: TASK_STATUS[state.status],
    ttl: record?.ttl ?? null,
    createdAt: state.created_at,
    lastUpdatedAt: state.updated_at,
    pollInterval: TASK_POLL_MS,
    statusMessage: message,
  };
}

export class SpoolTaskStore implements TaskStore {
  constructor(private readonly ctx: JobsContext) {}

  private snapshot(taskId: string): Promise<JobSnapshot> {
    return jobs.isJobId(taskId) ? jobs.snapshotOf(this.ctx, taskId) : Promise.resolve({ id: taskId, kind: 'missing' });
  }

  private async state(taskId: string): Promise<JobState | null> {
    const snap = await this.snapshot(taskId);
    return snap.kind === 'ok' ? snap.state : null;
  }

  createTask(_params: CreateTaskOptions, _requestId: RequestId, _request: Request): Promise<Task> {
    // Tasks are created by the start tools, which queue the job first (see server.ts).
    return Promise.reject(new Error('tasks are created by calling a start tool with a task'));
  }

  async getTask(taskId: string): Promise<Task | null> {
    await loadJobs();
    const state = await this.state(taskId);
    return state ? taskOf(state, recordOf(this.ctx, taskId)) : null;
  }

  async storeTaskResult(taskId: string): Promise<void> {
    await loadJobs();
    // the supervisor records a job's end in the spool; there is nothing else to store
    if (!(await this.state(taskId))) throw new Error(`no such task: ${taskId}`);
  }

  async getTaskResult(taskId: string): Promise<Result> {
    await loadJobs();
    const snap = await this.snapshot(taskId);
    const structured = snapshotAnswer(this.ctx, snap, 'tasks/get');
    return {
      content: [{ type: 'text', text: JSON.stringify(structured) }],
      structuredContent: structured,
      isError: snap.kind === 'ok' ? snap.state.status === 'error' : true,
    };
  }

  async updateTaskStatus(taskId: string, status: Task['status']): Promise<void> {
    if (status !== 'cancelled') return;
    await loadJobs();
    await jobs.cancel(this.ctx, { job_id: taskId });
  }

  async listTasks(cursor?: string): Promise<{ tasks: Task[]; nextCursor?: string }> {
    await loadJobs();
    const tasks: Task[] = [];
    if (jobs.isFleet(this.ctx)) return { tasks }; // no records in fleet mode (see recordOf)
    let scanned = 0;
    let last: string | undefined;
    for (const id of jobs.newestJobIds(this.ctx.paths)) {
      if (cursor && id >= cursor) continue;
      scanned += 1;
      last = id;
      const record = readRecord(this.ctx.paths, id);
      const state = record ? await this.state(id) : null;
      if (state) tasks.push(taskOf(state, record));
      if (tasks.length >= LIST_PAGE || scanned >= LIST_SCAN_LIMIT) {
        return { tasks, nextCursor: last };
      }
    }
    return { tasks };
  }
}
