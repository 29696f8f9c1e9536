import { spawn, type ChildProcess } from 'node:child_process';
import type { Invocation } from '../../agents/types.js';
import { errnoCode } from '../../errors.js';
import type { WorkerInfo } from '../../spool/state.js';
import type { ExitRecord } from '../../spool/store.js';
import { processStartTime } from '../processes.js';
import { DirectOutput, OutputSink } from '../worker-io.js';

/** Starting a worker: no shell, its own process group, its output to the sink. */

export interface SpawnSpec {
  /** The resolved binary. */
  file: string;
  invocation: Invocation;
  cwd: string;
  env: NodeJS.ProcessEnv;
  attempt: number;
  sink: OutputSink | DirectOutput;
}

export type Spawned =
  /** outputDone: the worker's output pipes have ended (at once when it writes to output.log itself). */
  | { kind: 'started'; child: ChildProcess; worker: WorkerInfo; outputDone: Promise<void> }
  | { kind: 'failed'; exit: ExitRecord };

const SPAWN_ERRORS: Record<string, string> = {
  E2BIG: 'the argument list is too long for the system (E2BIG)',
  EACCES: 'permission denied (EACCES)',
  ENOENT: 'the command or the cwd vanished before it could start (ENOENT)',
  ENOEXEC: 'the file is not an executable the system can run (ENOEXEC)',
};

function spawnFailure(spec: SpawnSpec, startedAt: string, error: unknown): ExitRecord {
  const code = errnoCode(error) ?? 'UNKNOWN';
  return {
    schema_version: 1,
    attempt: spec.attempt,
    pid: null,
    exit_code: null,
    signal: null,
    reason: 'spawn_failed',
    started_at: startedAt,
    ended_at: new Date().toISOString(),
    spawn_error: { code, message: `could not start ${spec.file}: ${SPAWN_ERRORS[code] ?? (error as Error).message}` },
    survivors: [],
  };
}

/** Starts the worker and feeds its stdin; resolves once it runs, or with why it could not start. */
export async function spawnWorker(spec: SpawnSpec, startedAt: string): Promise<Spawned> {
  const { invocation, sink } = spec;
  const stdin = invocation.stdin === null ? 'ignore' : 'pipe';
  let child: ChildProcess;
  try {
    child = spawn(spec.file, invocation.argv.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      argv0: invocation.argv[0],
      detached: true,
      stdio: sink instanceof DirectOutput ? [stdin, sink.fd, sink.fd] : [stdin, 'pipe', 'pipe'],
    });
  } catch (error) {
    return { kind: 'failed', exit: spawnFailure(spec, startedAt, error) };
  }
  // before the event loop reads the pipes (OutputSink.attach)
  const outputDone = sink instanceof OutputSink ? sink.attach(child) : Promise.resolve();
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error));
  });
  if (spawnError || child.pid === undefined) return { kind: 'failed', exit: spawnFailure(spec, startedAt, spawnError) };
  if (child.stdin) {
    child.stdin.on('error', () => undefined);
    child.stdin.end(invocation.stdin ?? '');
  }
  const pid = child.pid;
  return { kind: 'started', child, worker: { pid, pgid: pid, argv: invocation.argv, start_time: processStartTime(pid) }, outputDone };
}
