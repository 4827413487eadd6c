import { ReadThroughCache } from "../read-through.ts";
import type { Tenant, TenantStore } from "./tenants.ts";

export const TENANT_LOOKUP_DEFAULTS = {
  /** How long a tenant read is reused: a quota or opt-in change reaches workers within this. */
  ttlMs: 30_000,
  /** Tenants kept at once. */
  max: 10_000,
};

/**
 * The workers' read-through tenant lookup (the cache stage, the batcher): each tenant read from the
 * store at most once per `ttlMs` (and once at a time, renewed ahead: shared/read-through.ts), a
 * missing tenant remembered as missing too.
 *
 * @example const tenantLookup = new TenantLookup(tenants); const acme = await tenantLookup.get("acme");
 */
export class TenantLookup {
  readonly #tenants: Pick<TenantStore, "get">;
  readonly #cache: ReadThroughCache<Tenant | undefined>;

  constructor(tenants: Pick<TenantStore, "get">, options: Partial<typeof TENANT_LOOKUP_DEFAULTS> = {}) {
    const o = { ...TENANT_LOOKUP_DEFAULTS, ...options };
    this.#tenants = tenants;
    this.#cache = new ReadThroughCache({ max: o.max, ttlMs: o.ttlMs });
  }

  get(name: string): Promise<Tenant | undefined> {
    return this.#cache.get(name, () => this.#tenants.get(name));
  }
}
