// A process that runs one worktree step and can be SIGKILLed in the middle of it.
// node worktree-child.mjs '<json: {op, home, git, target, options, patchFile, cwd}>'
import { applyChanges, createWorktree, finishWorktree } from '../../dist/worktree/index.js';

const args = JSON.parse(process.argv[2]);
const ctx = { home: args.home, git: args.git };
const steps = {
  create: () => createWorktree(ctx, args.target, args.options),
  finish: () => finishWorktree(ctx, args.target, args.patchFile),
  apply: () => applyChanges(ctx, args.target, args.cwd),
};
const result = await steps[args.op]();
process.stdout.write(JSON.stringify(result));
