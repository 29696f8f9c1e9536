import { QueueError } from './errors.js';
import type { FleetDb } from './db.js';

/**
 * The queue's tables live in their own PostgreSQL schema, `agent_async`, versioned in
 * `agent_async.schema_version` (one row per applied migration). Migrations run in one
 * transaction under a transaction-level advisory lock, so any number of hosts may run
 * `queue init` (or their first command) at once: the first applies them, the others wait and
 * find nothing to do ("IF NOT EXISTS" alone is not safe under concurrency). A database whose
 * schema is newer than this code is refused: this code would write a format it does not know.
 *
 * The version covers the tables and the JSON of `jobs.state` (state.json's format): a new
 * state.json `schema_version` comes with a migration.
 *
 * A runner that was started before a migration goes on with the code it has, and the claim
 * function is the database's: what a job needs of its runner's code is a `features` list, and
 * a runner takes only jobs whose features it names at registration (`info.features`), so an
 * older runner never claims a job it cannot run (version 2).
 */
export const QUEUE_SCHEMA_VERSION = 2;
export const SCHEMA = 'agent_async';
/** Advisory lock key of migrations: "agentasy" in ASCII (0x6167656e74617379), fixed for ever. */
const MIGRATION_LOCK_KEY = '7018690069353558905';

/** Notification channels (payloads are ids only, always far below the 8000-byte limit). */
export const CHANNELS = {
  /** `<job id> <status>`: a job's state or its cancel/done request changed. */
  job: 'agent_async_job',
  /** `<host or *>`: a job became claimable (submitted, or released by a lost runner). */
  work: 'agent_async_work',
  /** `<job id> <end offset>`: a page of output was appended. */
  output: 'agent_async_output',
} as const;

interface Migration {
  version: number;
  description: string;
  sql: string;
}

const V1 = `
CREATE SEQUENCE ${SCHEMA}.lease_epoch_seq;

CREATE TABLE ${SCHEMA}.runners (
  host text PRIMARY KEY CHECK (host ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  epoch bigint NOT NULL UNIQUE,
  state text NOT NULL CHECK (state IN ('active', 'stopped', 'lost')),
  pid integer NOT NULL,
  labels text[] NOT NULL DEFAULT '{}',
  agents text[] NOT NULL DEFAULT '{}',
  capacity integer NOT NULL CHECK (capacity >= 0),
  lease_ms integer NOT NULL CHECK (lease_ms > 0),
  lease_expires_at timestamptz NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  version text NOT NULL,
  info jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE ${SCHEMA}.jobs (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-z]{23}$'),
  status text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'error', 'cancelled')),
  seq integer NOT NULL,
  state jsonb NOT NULL,
  agent text NOT NULL,
  host text,
  labels text[] NOT NULL DEFAULT '{}',
  submitted_host text NOT NULL,
  runner_host text,
  lease_epoch bigint,
  claim_attempt integer NOT NULL DEFAULT 0,
  claimed_at timestamptz,
  cancel_requested_at timestamptz,
  cancel_requested_by text,
  done_requested_at timestamptz,
  done_summary text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz,
  CONSTRAINT state_matches_columns CHECK (state->>'id' = id AND state->>'status' = status AND (state->>'seq')::integer = seq)
);
CREATE INDEX jobs_claimable ON ${SCHEMA}.jobs (id) WHERE status = 'pending' AND lease_epoch IS NULL;
CREATE INDEX jobs_owned ON ${SCHEMA}.jobs (lease_epoch) WHERE status IN ('pending', 'running');
CREATE INDEX jobs_active ON ${SCHEMA}.jobs (id) WHERE status IN ('pending', 'running');
CREATE INDEX jobs_finished ON ${SCHEMA}.jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE ${SCHEMA}.job_files (
  job_id text NOT NULL REFERENCES ${SCHEMA}.jobs (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,63}$'),
  data bytea NOT NULL,
  PRIMARY KEY (job_id, name)
);

CREATE TABLE ${SCHEMA}.output_pages (
  job_id text NOT NULL REFERENCES ${SCHEMA}.jobs (id) ON DELETE CASCADE,
  page integer NOT NULL CHECK (page >= 0),
  byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
  byte_length integer NOT NULL CHECK (byte_length > 0),
  epoch bigint NOT NULL,
  data bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, page),
  UNIQUE (job_id, byte_offset)
);

CREATE TABLE ${SCHEMA}.events (
  id bigserial PRIMARY KEY,
  job_id text REFERENCES ${SCHEMA}.jobs (id) ON DELETE CASCADE,
  host text,
  epoch bigint,
  kind text NOT NULL,
  detail text,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_job ON ${SCHEMA}.events (job_id, id);
CREATE INDEX events_at ON ${SCHEMA}.events (at);

-- Wake-ups and the event log come from triggers, so a change and its notification commit together.
CREATE FUNCTION ${SCHEMA}.jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${SCHEMA}.events (job_id, host, kind) VALUES (NEW.id, NEW.submitted_host, 'submitted');
  ELSE
    IF NEW.lease_epoch IS DISTINCT FROM OLD.lease_epoch AND NEW.status = 'pending' THEN
      INSERT INTO ${SCHEMA}.events (job_id, host, epoch, kind)
      VALUES (NEW.id, coalesce(NEW.runner_host, OLD.runner_host), coalesce(NEW.lease_epoch, OLD.lease_epoch),
              CASE WHEN NEW.lease_epoch IS NULL THEN 'released' WHEN OLD.lease_epoch IS NULL THEN 'claimed' ELSE 'adopted' END);
    ELSIF NEW.lease_epoch IS DISTINCT FROM OLD.lease_epoch AND NEW.lease_epoch IS NOT NULL THEN
      INSERT INTO ${SCHEMA}.events (job_id, host, epoch, kind) VALUES (NEW.id, NEW.runner_host, NEW.lease_epoch, 'adopted');
    END IF;
    IF NEW.status <> OLD.status THEN
      INSERT INTO ${SCHEMA}.events (job_id, host, epoch, kind, detail)
      VALUES (NEW.id, NEW.runner_host, coalesce(NEW.lease_epoch, OLD.lease_epoch), NEW.status, NEW.state #>> '{error,code}');
    END IF;
    IF NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at AND NEW.cancel_requested_at IS NOT NULL THEN
      INSERT INTO ${SCHEMA}.events (job_id, kind, detail) VALUES (NEW.id, 'cancel_requested', NEW.cancel_requested_by);
    END IF;
    IF NEW.done_requested_at IS DISTINCT FROM OLD.done_requested_at AND NEW.done_requested_at IS NOT NULL THEN
      INSERT INTO ${SCHEMA}.events (job_id, kind) VALUES (NEW.id, 'done_requested');
    END IF;
  END IF;
  IF TG_OP = 'INSERT' OR NEW.seq <> OLD.seq
     OR NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at
     OR NEW.done_requested_at IS DISTINCT FROM OLD.done_requested_at THEN
    PERFORM pg_notify('${CHANNELS.job}', NEW.id || ' ' || NEW.status);
  END IF;
  IF NEW.status = 'pending' AND NEW.lease_epoch IS NULL
     AND (TG_OP = 'INSERT' OR OLD.lease_epoch IS NOT NULL OR OLD.status <> 'pending') THEN
    PERFORM pg_notify('${CHANNELS.work}', coalesce(NEW.host, '*'));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE ON ${SCHEMA}.jobs
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.jobs_changed();

CREATE FUNCTION ${SCHEMA}.output_appended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${CHANNELS.output}', NEW.job_id || ' ' || (NEW.byte_offset + NEW.byte_length));
  RETURN NULL;
END $$;
CREATE TRIGGER output_appended AFTER INSERT ON ${SCHEMA}.output_pages
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.output_appended();

CREATE FUNCTION ${SCHEMA}.runners_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.epoch <> OLD.epoch OR NEW.state <> OLD.state THEN
    INSERT INTO ${SCHEMA}.events (host, epoch, kind, detail)
    VALUES (NEW.host, NEW.epoch, 'runner_' || NEW.state, CASE WHEN TG_OP = 'UPDATE' THEN 'previous epoch ' || OLD.epoch END);
  END IF;
  IF TG_OP = 'INSERT' OR NEW.state <> OLD.state OR NEW.agents <> OLD.agents OR NEW.labels <> OLD.labels THEN
    PERFORM pg_notify('${CHANNELS.work}', NEW.host);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER runners_changed AFTER INSERT OR UPDATE ON ${SCHEMA}.runners
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.runners_changed();

-- The claim, in one round trip: lock the runner's row (it fences the claim and serializes the
-- capacity count of one runner), then take up to p_limit matching jobs with SKIP LOCKED.
CREATE FUNCTION ${SCHEMA}.claim_jobs(p_host text, p_epoch bigint, p_limit integer)
RETURNS SETOF ${SCHEMA}.jobs LANGUAGE plpgsql AS $$
DECLARE
  me ${SCHEMA}.runners;
  free integer;
BEGIN
  SELECT * INTO me FROM ${SCHEMA}.runners
   WHERE host = p_host AND epoch = p_epoch AND state = 'active'
   FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'lease of host % at epoch % is not valid', p_host, p_epoch USING ERRCODE = 'AAL01';
  END IF;
  -- expired but not reaped (e.g. after the server was away): renew before claiming anything
  IF me.lease_expires_at <= clock_timestamp() THEN
    RETURN;
  END IF;
  SELECT me.capacity - count(*) INTO free FROM ${SCHEMA}.jobs
   WHERE lease_epoch = p_epoch AND status IN ('pending', 'running');
  IF free <= 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
  UPDATE ${SCHEMA}.jobs j
     SET lease_epoch = p_epoch, runner_host = p_host, claim_attempt = j.claim_attempt + 1,
         claimed_at = clock_timestamp(), updated_at = clock_timestamp()
   WHERE j.id IN (SELECT c.id FROM ${SCHEMA}.jobs c
                   WHERE c.status = 'pending' AND c.lease_epoch IS NULL
                     AND c.agent = ANY (me.agents)
                     AND (c.host IS NULL OR c.host = p_host)
                     AND c.labels <@ me.labels
                     AND c.cancel_requested_at IS NULL
                   ORDER BY c.id
                   LIMIT least(free, p_limit)
                   FOR UPDATE SKIP LOCKED)
  RETURNING j.*;
END $$;
`;

// What a job needs of its runner's code: a runner names what it can in its registration's
// info (a runner of version 1 names nothing, and so takes no job that needs anything). The
// database derives a job's features from its state at insert, so a process that checked the
// schema before the upgrade (its code submits none) cannot queue a job past the gate; and a
// claim not started yet by a runner that cannot run its job goes back to the queue (the
// runner's start is fenced by the epoch it no longer holds).
const V2 = `
SET LOCAL lock_timeout = '5s';
ALTER TABLE ${SCHEMA}.jobs ADD COLUMN features text[] NOT NULL DEFAULT '{}';

CREATE FUNCTION ${SCHEMA}.job_features(state jsonb, given text[]) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(DISTINCT f ORDER BY f), '{}'::text[])
    FROM unnest(coalesce(given, '{}'::text[])
                || CASE WHEN state #> '{request,worktree,remote_url}' IS NOT NULL THEN '{isolated-remote}'::text[] ELSE '{}'::text[] END) AS f
$$;

CREATE FUNCTION ${SCHEMA}.runner_features(info jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN jsonb_typeof(info->'features') = 'array'
              THEN ARRAY(SELECT jsonb_array_elements_text(info->'features'))
              ELSE '{}'::text[] END
$$;

CREATE FUNCTION ${SCHEMA}.jobs_features() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.features := ${SCHEMA}.job_features(NEW.state, NEW.features);
  RETURN NEW;
END $$;
CREATE TRIGGER jobs_features BEFORE INSERT ON ${SCHEMA}.jobs
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.jobs_features();

UPDATE ${SCHEMA}.jobs SET features = ${SCHEMA}.job_features(state, features) WHERE status = 'pending';
UPDATE ${SCHEMA}.jobs j SET lease_epoch = NULL, runner_host = NULL, updated_at = clock_timestamp()
  FROM ${SCHEMA}.runners r
 WHERE j.status = 'pending' AND j.lease_epoch = r.epoch AND NOT (j.features <@ ${SCHEMA}.runner_features(r.info));

CREATE OR REPLACE FUNCTION ${SCHEMA}.claim_jobs(p_host text, p_epoch bigint, p_limit integer)
RETURNS SETOF ${SCHEMA}.jobs LANGUAGE plpgsql AS $$
DECLARE
  me ${SCHEMA}.runners;
  free integer;
BEGIN
  SELECT * INTO me FROM ${SCHEMA}.runners
   WHERE host = p_host AND epoch = p_epoch AND state = 'active'
   FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'lease of host % at epoch % is not valid', p_host, p_epoch USING ERRCODE = 'AAL01';
  END IF;
  IF me.lease_expires_at <= clock_timestamp() THEN
    RETURN;
  END IF;
  SELECT me.capacity - count(*) INTO free FROM ${SCHEMA}.jobs
   WHERE lease_epoch = p_epoch AND status IN ('pending', 'running');
  IF free <= 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
  UPDATE ${SCHEMA}.jobs j
     SET lease_epoch = p_epoch, runner_host = p_host, claim_attempt = j.claim_attempt + 1,
         claimed_at = clock_timestamp(), updated_at = clock_timestamp()
   WHERE j.id IN (SELECT c.id FROM ${SCHEMA}.jobs c
                   WHERE c.status = 'pending' AND c.lease_epoch IS NULL
                     AND c.agent = ANY (me.agents)
                     AND (c.host IS NULL OR c.host = p_host)
                     AND c.labels <@ me.labels
                     AND c.features <@ ${SCHEMA}.runner_features(me.info)
                     AND c.cancel_requested_at IS NULL
                   ORDER BY c.id
                   LIMIT least(free, p_limit)
                   FOR UPDATE SKIP LOCKED)
  RETURNING j.*;
END $$;
`;

const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'jobs, runners, output pages, events, claim function, notify triggers', sql: V1 },
  { version: 2, description: "jobs.features: what a job needs of its runner's code; the claim takes only what the runner names", sql: V2 },
];

export interface SchemaReport {
  /** The version the database has now. */
  version: number;
  /** Migrations this call applied (empty when another process had applied them). */
  applied: number[];
}

function newerSchema(db: FleetDb, found: number): QueueError {
  return new QueueError(
    'queue_schema_newer',
    `queue_url (${db.shown}): the queue's schema is version ${found}, newer than this agent-async knows (${QUEUE_SCHEMA_VERSION}); upgrade agent-async on this host (it refuses to write a format it does not know)`,
  );
}

/** The schema version of the database, 0 when the queue was never initialised there. */
export async function readSchemaVersion(db: FleetDb): Promise<number> {
  const present = await db.query<{ present: boolean }>(`SELECT to_regclass('${SCHEMA}.schema_version') IS NOT NULL AS present`);
  if (!present.rows[0]?.present) return 0;
  const result = await db.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${SCHEMA}.schema_version`);
  return result.rows[0]?.version ?? 0;
}

/**
 * Brings the database to this code's schema (`queue init`, and every process's first use),
 * applying each missing migration once whatever the number of processes doing it at once.
 */
export async function migrate(db: FleetDb, appliedBy: string): Promise<SchemaReport> {
  // a migration that alters a busy table waits a short while for its lock (every runner's
  // query would queue behind it), gives up, and tries again
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await migrateOnce(db, appliedBy);
    } catch (error) {
      if (!isLockTimeout(error) || attempt === MIGRATION_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 750));
    }
  }
}

const MIGRATION_ATTEMPTS = 8;

function isLockTimeout(error: unknown): boolean {
  for (let cause: unknown = error; cause instanceof Object; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: unknown }).code === '55P03') return true;
  }
  return false;
}

async function migrateOnce(db: FleetDb, appliedBy: string): Promise<SchemaReport> {
  const client = await db.connectClient('migrate', { statement_timeout: 0, query_timeout: 120_000, lock_timeout: 60_000 });
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_version (
      version integer PRIMARY KEY, description text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT clock_timestamp(), applied_by text NOT NULL)`);
    const done = await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA}.schema_version`);
    const have = new Set(done.rows.map((row) => row.version));
    const newest = Math.max(0, ...have);
    if (newest > QUEUE_SCHEMA_VERSION) throw newerSchema(db, newest);
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (have.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${SCHEMA}.schema_version (version, description, applied_by) VALUES ($1, $2, $3)`, [
        migration.version, migration.description, appliedBy,
      ]);
      applied.push(migration.version);
    }
    await client.query('COMMIT');
    return { version: Math.max(newest, ...applied), applied };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw db.wrap(error);
  } finally {
    await db.end(client);
  }
}

/** Checks the schema on first use: applies missing migrations, refuses a newer database. */
export async function ensureSchema(db: FleetDb, appliedBy: string): Promise<SchemaReport> {
  const version = await readSchemaVersion(db);
  if (version > QUEUE_SCHEMA_VERSION) throw newerSchema(db, version);
  if (version === QUEUE_SCHEMA_VERSION) return { version, applied: [] };
  return migrate(db, appliedBy);
}
