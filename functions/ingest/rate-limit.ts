import { LRUCache } from "lru-cache";

/**
 * Per-tenant token buckets on one ingest replica: a burst guard in front of
 * the daily quota (which DynamoDB keeps across replicas). With N replicas a
 * tenant gets up to N × the rate; KEDA/Knative scale N, so the knob is
 * per replica on purpose (no shared write per request).
 */
export interface RateLimiterOptions {
  /** Tokens added per second; 0 disables the limiter. */
  perSecond: number;
  /** Bucket size. @default max(1, ceil(perSecond)) */
  burst?: number;
  /** Most tenants tracked; the least recently seen are forgotten first. @default 10_000 */
  maxTenants?: number;
  now?: () => number;
}

/** @example const limiter = new RateLimiter({ perSecond: 50 }); const wait = limiter.take("acme"); */
export class RateLimiter {
  /** Buckets by tenant, at most maxTenants: the least recently seen is forgotten first and starts again full. */
  readonly #buckets: LRUCache<string, { tokens: number; at: number }>;
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(options: RateLimiterOptions) {
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst ?? Math.max(1, Math.ceil(options.perSecond));
    this.#buckets = new LRUCache({ max: options.maxTenants ?? 10_000 });
    this.#now = options.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.#perMs > 0;
  }

  /** Takes one token: 0 when allowed, else the seconds until one is available. */
  take(tenant: string): number {
    if (!this.enabled) return 0;
    const bucket = this.#refill(tenant);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.#perMs / 1000;
  }

  /** Seconds until the tenant's bucket has a token again; 0 when it has one now. Takes nothing. */
  waitFor(tenant: string): number {
    if (!this.enabled) return 0;
    const bucket = this.#refill(tenant);
    return bucket.tokens >= 1 ? 0 : (1 - bucket.tokens) / this.#perMs / 1000;
  }

  /** Takes `cost` tokens after the fact (the bucket may go negative: a debt paid back over time). */
  charge(tenant: string, cost: number): void {
    if (!this.enabled) return;
    const bucket = this.#refill(tenant);
    // The debt is bounded so that one burst of refusals is forgiven within a few bursts' time.
    bucket.tokens = Math.max(-this.#burst, bucket.tokens - cost);
  }

  #refill(tenant: string): { tokens: number; at: number } {
    const now = this.#now();
    const bucket = this.#buckets.get(tenant) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    this.#buckets.set(tenant, bucket);
    return bucket;
  }
}
