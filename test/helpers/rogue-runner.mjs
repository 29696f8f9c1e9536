// A runner that believes it leads whatever the lease says (what a stale takeover or a machine
// sleep can produce), to show that the per-job claim alone keeps every job to one start.
import { loadConfig } from '../../dist/config.js';
import { Runner } from '../../dist/runner/runner.js';
import { spoolPaths } from '../../dist/spool/layout.js';

const paths = spoolPaths(process.env.AGENT_ASYNC_HOME);
const epoch = Number(process.argv[2] ?? 1);
const runner = new Runner({
  paths,
  config: loadConfig(paths),
  version: 'rogue',
  log: (message) => process.stderr.write(`rogue[${process.pid}] ${message}\n`),
  acquire: async () => ({
    epoch,
    isLeading: () => true,
    onLost: () => undefined,
    release: async () => undefined,
  }),
});
await runner.run();
process.exit(0);
