import { LRUCache } from "lru-cache";
import type { Tenant, TenantStore } from "./tenants.ts";

export const TENANT_LOOKUP_DEFAULTS = {
  /** How long a tenant read is reused: a quota or opt-in change reaches workers within this. */
  ttlMs: 30_000,
  /** Tenants kept at once. */
  max: 10_000,
};

/**
 * The workers' read-through tenant lookup (the cache stage, the batcher): each tenant read from the
 * store at most once per `ttlMs`, a missing tenant remembered as missing too.
 *
 * @example const tenantLookup = new TenantLookup(tenants); const acme = await tenantLookup.get("acme");
 */
export class TenantLookup {
  readonly #tenants: Pick<TenantStore, "get">;
  readonly #cache: LRUCache<string, { tenant: Tenant | undefined }>;

  constructor(tenants: Pick<TenantStore, "get">, options: Partial<typeof TENANT_LOOKUP_DEFAULTS> = {}) {
    const o = { ...TENANT_LOOKUP_DEFAULTS, ...options };
    this.#tenants = tenants;
    this.#cache = new LRUCache({ max: o.max, ttl: o.ttlMs });
  }

  async get(name: string): Promise<Tenant | undefined> {
    const hit = this.#cache.get(name);
    if (hit) return hit.tenant;
    const tenant = await this.#tenants.get(name);
    this.#cache.set(name, { tenant });
    return tenant;
  }
}
