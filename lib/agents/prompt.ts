import { inlineContextFiles, type ContextFile } from './context-files.js';

/**
 * The prompt a worker receives (kept verbatim in prompt.txt): the task, inlined context files,
 * and a short footer telling the worker its job id and how to report that it is done.
 */
export function jobFooter(jobId: string): string {
  return [
    '---',
    `[agent-async] You are running as agent-async job ${jobId}. When your work is finished, report it:`,
    `call the MCP tool agent_notify_done with job_id "${jobId}" and a one-line summary, or write a one-line`,
    'summary into the file $AGENT_ASYNC_JOB_DIR/done. Simply finishing your answer works too.',
  ].join('\n');
}

export function assemblePrompt(jobId: string, task: string, files: ContextFile[]): string {
  const parts = [task.trimEnd()];
  const context = inlineContextFiles(files);
  if (context) parts.push(context);
  parts.push(jobFooter(jobId));
  return `${parts.join('\n\n')}\n`;
}

/** The task and context of an earlier prompt, without its footer (to retry it as a new job). */
export function stripFooter(prompt: string, jobId: string): string {
  const footer = `\n\n${jobFooter(jobId)}\n`;
  return prompt.endsWith(footer) ? prompt.slice(0, -footer.length) : prompt;
}
