import type { FleetDb } from './db.js';
import { LeaseLost, isConnectionFailure } from './errors.js';
import { heartbeat, reapExpired, stopRunner, type HeartbeatUpdate, type LeaseToken, type ReapReport } from './runners.js';

/**
 * Keeps a runner's lease: renews it every third of its length, reports at once when it is
 * lost (the runner must then stop every job of that epoch and register again), and says when
 * this runner may reap others. Reaping needs an unbroken run of successful renewals as long
 * as a lease: a runner that was itself cut off must not, on its return, declare dead the
 * others that were cut off with it and have not renewed yet.
 */
export interface LeaseKeeperOptions {
  onLost: (error: LeaseLost) => void;
  /** Connection trouble while renewing (the lease is kept trying). */
  onTrouble?: (message: string) => void;
  /** What to advertise with each renewal (agents found, labels, capacity). */
  update?: () => HeartbeatUpdate;
  intervalMs?: number;
}

export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private lostError: LeaseLost | undefined;
  private streakSince: number | undefined;
  private lastRenewal: number;
  private renewing: Promise<void> | undefined;

  constructor(
    private readonly db: FleetDb,
    readonly token: LeaseToken,
    private readonly options: LeaseKeeperOptions,
  ) {
    this.streakSince = performance.now(); // registering was a renewal
    this.lastRenewal = this.streakSince;
  }

  get lost(): boolean {
    return this.lostError !== undefined;
  }

  start(): this {
    const interval = this.options.intervalMs ?? Math.max(50, Math.floor(this.token.leaseMs / 3));
    this.timer = setInterval(() => void this.renew(), interval);
    return this;
  }

  /** One renewal now (also what the timer runs); resolves when it is done. */
  renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    if (this.lostError) return;
    try {
      await heartbeat(this.db, this.token, this.options.update?.());
      this.lastRenewal = performance.now();
      this.streakSince ??= this.lastRenewal;
    } catch (error) {
      this.streakSince = undefined;
      if (error instanceof LeaseLost) {
        this.lostError = error;
        this.halt();
        this.options.onLost(error);
      } else {
        this.options.onTrouble?.(isConnectionFailure(error) ? `queue unreachable: ${(error as Error).message}` : (error as Error).message);
      }
    }
  }

  /**
   * True when renewals have succeeded without a gap for at least one lease length, the last
   * one within a lease: a renewal stuck on a dead connection is a gap too, whatever the pool's
   * other connections can still do.
   */
  mayReap(): boolean {
    const now = performance.now();
    return !this.lostError && this.streakSince !== undefined && now - this.streakSince >= this.token.leaseMs && now - this.lastRenewal < this.token.leaseMs;
  }

  /** Reaps expired leases of other runners (never this host's) when `mayReap`; null when it may not. */
  async reap(): Promise<ReapReport | null> {
    return this.mayReap() ? reapExpired(this.db, { exceptHost: this.token.host }) : null;
  }

  private halt(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops renewing and gives the lease up (see `stopRunner`). */
  async stop(): Promise<{ released: string[]; lost: string[] }> {
    this.halt();
    await this.renewing;
    if (this.lostError) return { released: [], lost: [] };
    return stopRunner(this.db, this.token);
  }

  /** Stops renewing without telling the queue (the lease then expires): for tests of a vanished runner. */
  abandon(): void {
    this.halt();
  }
}
