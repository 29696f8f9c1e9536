/**
 * Fleet mode: the queue in PostgreSQL that runners on many hosts share (docs/FLEET.md).
 * Nothing in lib/spool imports this folder; it uses the spool's state machine and files.
 */
export { FleetDb, DEFAULT_TIMEOUTS, type QueueOptions, type Sql } from './db.js';
export { LeaseLost, QueueError, isConnectionFailure, isRetryable, type QueueErrorCode } from './errors.js';
export { FleetQueue, type OpenOptions } from './fleet.js';
export { LeaseKeeper, type LeaseKeeperOptions } from './lease.js';
export { QueueListener } from './listen.js';
export { RUNNER_FEATURES, canTake, requirementsFor, validateHostName, validateLabels, whyPending, type PendingReason, type Requirements, type RunnerView } from './match.js';
export { Outbox, type DeliveryReport, type OutboxEntry, type OutputSource } from './outbox.js';
export { OUTPUT_PAGE_BYTES, appendOutput, outputSize, readOutput, type OutputChunk } from './output.js';
export {
  activeJobIds, deleteFinishedJobs, finishedJobsWithRemote, getJob, listJobs, readJobFile, readJobs, requestCancel, requestDone, submitJob,
  transitionJob, writeJobFile, type CancelResult, type FleetJob, type FleetSnapshot, type SubmitRequest,
} from './queue.js';
export {
  claimJobs, heartbeat, listRunners, loseJob, lostOutcome, pendingReasons, reapExpired, registerRunner, releaseClaim,
  stopRunner, type LeaseToken, type Registered, type RunnerRegistration,
} from './runners.js';
export { CHANNELS, QUEUE_SCHEMA_VERSION, SCHEMA, ensureSchema, migrate, readSchemaVersion } from './schema.js';
export { queueUrlOf, redact } from './url.js';
export { awaitAnyEnded, waitForOutput, type FleetAwaitResult, type WakeReason } from './wait.js';
