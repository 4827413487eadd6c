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
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxTenants: number;
  readonly #now: () => number;

  constructor(options: RateLimiterOptions) {
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst ?? Math.max(1, Math.ceil(options.perSecond));
    this.#maxTenants = options.maxTenants ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.#perMs > 0;
  }

  /** Takes one token: 0 when allowed, else the seconds until one is available. */
  take(tenant: string): number {
    if (!this.enabled) return 0;
    const now = this.#now();
    const bucket = this.#buckets.get(tenant) ?? { tokens: this.#burst, at: now };
    this.#buckets.delete(tenant);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    this.#buckets.set(tenant, bucket);
    if (this.#buckets.size > this.#maxTenants) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.#perMs / 1000;
  }
}
