import { LRUCache } from "lru-cache";

export interface ReadThroughOptions<V> {
  /** Entries kept at once; the least recently used go first. */
  max: number;
  /** How long an entry answers (by its value, e.g. shorter for "not found"); 0 keeps nothing. */
  ttlMs: number | ((value: V) => number);
  /** Clock (tests). @default Date.now */
  now?: () => number;
}

/** An entry is renewed in the background once this share of its time has passed. */
const REFRESH_AHEAD = 0.8;

/**
 * A read-through cache for lookups many requests make at once (a tenant by name or key):
 * - one load per key at a time: a burst of requests whose entry just expired shares it, instead
 *   of each reading the table;
 * - an entry past REFRESH_AHEAD of its time answers at once while one load renews it in the
 *   background, so under steady traffic no request waits on the table;
 * - an entry past its time is never served: a change (a revoked key) takes effect within `ttlMs`.
 *
 * A failed load rejects every caller that shared it and is not cached; a failed renewal leaves
 * the entry to expire in its time.
 *
 * @example const tenants = new ReadThroughCache<Tenant | undefined>({ max: 1000, ttlMs: 30_000 });
 * const acme = await tenants.get("acme", () => store.get("acme"));
 */
export class ReadThroughCache<V> {
  /** Values boxed: lru-cache keeps no `undefined` ("not found" is a value here). */
  readonly #cache: LRUCache<string, { value: V }>;
  readonly #loading = new Map<string, Promise<V>>();
  readonly #ttl: (value: V) => number;

  constructor(options: ReadThroughOptions<V>) {
    const { ttlMs } = options;
    this.#ttl = typeof ttlMs === "function" ? ttlMs : () => ttlMs;
    const now = options.now ?? Date.now;
    this.#cache = new LRUCache({ max: options.max, perf: { now }, ttlResolution: 0 });
  }

  get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.#cache.get(key);
    if (!hit) return this.#load(key, load);
    if (this.#cache.getRemainingTTL(key) < this.#ttl(hit.value) * (1 - REFRESH_AHEAD)) {
      this.#load(key, load).catch(() => undefined);
    }
    return Promise.resolve(hit.value);
  }

  /** The entry, if one is live, without loading. */
  peek(key: string): V | undefined {
    return this.#cache.get(key, { updateAgeOnGet: false })?.value;
  }

  #load(key: string, load: () => Promise<V>): Promise<V> {
    const pending = this.#loading.get(key);
    if (pending) return pending;
    const loading = (async () => {
      const value = await load();
      const ttl = this.#ttl(value);
      if (ttl > 0) this.#cache.set(key, { value }, { ttl });
      return value;
    })().finally(() => this.#loading.delete(key));
    this.#loading.set(key, loading);
    return loading;
  }
}
