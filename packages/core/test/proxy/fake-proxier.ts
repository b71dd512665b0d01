import type { Proxier, SyncInput, SyncStats } from "../../src/proxy/proxier.js";
import type { Clock } from "../../src/util/clock.js";

/** One recorded call of {@link FakeProxier.sync}. */
export interface RecordedSync {
  readonly input: SyncInput;
  /** Fake-clock time the sync started. */
  readonly at: number;
}

/**
 * A Proxier that records its inputs. `failures` holds errors to throw on the next
 * syncs (one per sync, in order); `syncMs` makes each sync take that long on the clock.
 */
export class FakeProxier implements Proxier {
  readonly mode = "fake";
  readonly syncs: RecordedSync[] = [];
  failures: unknown[] = [];
  syncMs = 0;
  active = 0;
  maxActive = 0;
  cleanups = 0;

  constructor(private readonly clock: Clock) {}

  async sync(input: SyncInput): Promise<SyncStats> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.syncs.push({ input, at: this.clock.now() });
    try {
      if (this.syncMs > 0) await this.clock.sleep(this.syncMs);
      const failure = this.failures.shift();
      if (failure !== undefined) throw failure;
      let endpoints = 0;
      for (const eps of input.snapshot.endpoints.values()) endpoints += eps.length;
      return { servicePorts: input.snapshot.services.size, endpoints };
    } finally {
      this.active--;
    }
  }

  async cleanup(): Promise<void> {
    this.cleanups++;
  }

  /** The `full` flag of every sync so far. */
  fullFlags(): boolean[] {
    return this.syncs.map((s) => s.input.full);
  }

  last(): SyncInput {
    const s = this.syncs[this.syncs.length - 1];
    if (!s) throw new Error("no sync recorded");
    return s.input;
  }
}
