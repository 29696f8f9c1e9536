import { runnerMain } from './runner-main.js';

/** Script a detached runner is started with (faster than going through the whole CLI). */
runnerMain().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${String((error as Error).stack ?? error)}\n`);
    process.exit(70);
  },
);
