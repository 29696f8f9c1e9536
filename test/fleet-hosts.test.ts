import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FleetQueue, getJob, readOutput, requestCancel, requestDone } from '../lib/fleet/index.js';
import { Hosts, registered, submitWorkerJob, terminal, until } from './helpers/fleet-hosts.js';
import { need, useTestCluster } from './helpers/pg-cluster.js';

/**
 * Fleet mode end to end: three runner hosts, each a real `agent-async runner` process with its
 * own HOME and spool, sharing one queue in a throwaway PostgreSQL cluster. Jobs are submitted
 * with lib/fleet's submitJob (what the faces do in fleet mode) and run by the hosts' local
 * runners; their workers record every start in a per-job ledger. Children run from dist/.
 */
const pg = await useTestCluster();
const queues: FleetQueue[] = [];
let hosts: Hosts | undefined;

beforeAll(() => {
  if (pg.cluster) process.env.PGPASSFILE = pg.cluster.pgpassFile;
});

afterEach(() => {
  hosts?.cleanup();
  hosts = undefined;
});

afterAll(async () => {
  await Promise.all(queues.map((queue) => queue.close()));
});

async function setup(prefix: string): Promise<{ queue: FleetQueue; hosts: Hosts }> {
  const cluster = need(pg);
  const database = await cluster.createDatabase(prefix);
  const queue = await FleetQueue.open(cluster.url(database), { role: 'test' });
  queues.push(queue);
  hosts = new Hosts(cluster, database);
  return { queue, hosts };
}

async function startsInEvents(queue: FleetQueue, ids: string[]): Promise<Map<string, number>> {
  const rows = await queue.db.query<{ job_id: string; n: number }>(
    "SELECT job_id, count(*)::int AS n FROM agent_async.events WHERE kind = 'running' AND job_id = ANY($1::text[]) GROUP BY job_id",
    [ids],
  );
  return new Map(rows.rows.map((row) => [row.job_id, row.n]));
}

describe.skipIf(!pg.cluster)(`fleet hosts: runners on three hosts share one queue ${pg.skip ?? ''}`, () => {
  it('runs a pinned job on its host, spreads the others (each exactly once), and the output is readable from the queue', async () => {
    const { queue, hosts } = await setup('hosts');
    for (const name of ['h1', 'h2', 'h3']) hosts.start(name);
    await registered(queue, ['h1', 'h2', 'h3']);

    const pinned = await submitWorkerJob(queue, hosts, { mode: 'quick', args: ['5'], host: 'h2' });
    const pinnedJob = await terminal(queue, pinned);
    expect(pinnedJob.state.status).toBe('done');
    expect(pinnedJob.runnerHost).toBe('h2');
    expect(hosts.starts(pinned).map((line) => line[2])).toEqual(['h2']);
    const expected = Array.from({ length: 5 }, (_, i) => `line ${i} of ${pinned}\n`).join('');
    expect((await readOutput(queue.db, pinned, 0, 1 << 20)).data.toString('utf8')).toBe(expected);
    // the local spool of h2 holds the same job, as a local job would be
    const local = JSON.parse(fs.readFileSync(path.join(hosts.all[1]!.home, 'jobs', pinned, 'state.json'), 'utf8'));
    expect(local.status).toBe('done');

    const ids = await Promise.all(Array.from({ length: 12 }, () => submitWorkerJob(queue, hosts, { mode: 'sleep', args: ['300', '2'] })));
    const jobs = await Promise.all(ids.map((id) => terminal(queue, id)));
    expect(jobs.map((job) => job.state.status)).toEqual(ids.map(() => 'done'));
    for (const id of ids) expect(hosts.starts(id)).toHaveLength(1);
    expect([...(await startsInEvents(queue, ids)).values()]).toEqual(ids.map(() => 1));
    expect(new Set(jobs.map((job) => job.runnerHost)).size).toBeGreaterThan(1);
    for (const job of jobs) {
      const output = (await readOutput(queue.db, job.state.id, 0, 1 << 20)).data.toString('utf8');
      expect(output).toBe(`line 0 of ${job.state.id}\nline 1 of ${job.state.id}\nend\n`);
      expect(hosts.starts(job.state.id)[0]![2]).toBe(job.runnerHost);
    }
  });

  it('a cancel and a done report made on another host reach the worker', async () => {
    const { queue, hosts } = await setup('requests');
    for (const name of ['h1', 'h2', 'h3']) hosts.start(name);
    await registered(queue, ['h1', 'h2', 'h3']);
    const cancelled = await submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h1' });
    const finished = await submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h3' });
    await until(() => (hosts.starts(cancelled).length > 0 && hosts.starts(finished).length > 0 ? true : undefined));
    await until(async () => ((await getJob(queue.db, cancelled))?.state.worker ? true : undefined));
    await requestCancel(queue.db, cancelled, 'h2');
    await until(async () => ((await getJob(queue.db, finished))?.state.worker ? true : undefined));
    await requestDone(queue.db, finished, 'all done, said on h2');
    const [c, f] = await Promise.all([terminal(queue, cancelled), terminal(queue, finished)]);
    expect(c.state.status).toBe('cancelled');
    expect(f.state.status).toBe('done');
    expect(f.state.notified?.summary).toBe('all done, said on h2');
    // the output the worker wrote before it was stopped is there
    expect((await readOutput(queue.db, cancelled, 0, 1000)).data.toString('utf8')).toBe('holding\n');
    expect(hosts.starts(cancelled)).toHaveLength(1);
    expect(hosts.starts(finished)).toHaveLength(1);
  });
});
