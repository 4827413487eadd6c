import { describe, expect, it } from "vitest";
import { gatedLoad } from "../../test/helpers/gated-load.ts";
import { hashApiKey, type Tenant, type TenantStore } from "../shared/stores/tenants.ts";
import { Authenticator } from "./auth.ts";

const KEY = "dq_live_unit_test_key_0123456789";

function tenant(name: string, revoked = false): Tenant {
  return {
    tenant: name,
    key_hash: hashApiKey(KEY),
    webhook_secrets: [],
    daily_requests: null,
    daily_tokens: null,
    require_signatures: false,
    cache_opt_in: false,
    degradation: {} as Tenant["degradation"],
    created_at: "2026-01-01T00:00:00.000Z",
    ...(revoked ? { revoked_at: "2026-01-02T00:00:00.000Z" } : {}),
  };
}

/** A tenant table whose key lookups wait until the test lets them answer. */
function slowTenants(answer: () => Tenant | undefined) {
  const gate = gatedLoad(answer);
  const store = { findByKeyHash: gate.load } as unknown as TenantStore;
  return { store, lookups: gate.calls, answerAll: gate.answer };
}

const seen = { claim: async () => true, release: async () => undefined };
const headers = { authorization: `Bearer ${KEY}` };
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** An Authenticator (10 s cache, a clock the test moves) whose entry for KEY is loaded: acme. */
async function cachedAcme() {
  const clock = { now: 1_000_000 };
  let current = tenant("acme");
  const table = slowTenants(() => current);
  const auth = new Authenticator({ tenants: table.store, seen, cacheMs: 10_000, now: () => clock.now });
  const first = auth.authenticate(headers, "");
  await flush();
  table.answerAll();
  await first;
  return { auth, table, clock, tenantIs: (next: Tenant) => (current = next) };
}

describe("Authenticator's key lookups", () => {
  it("a burst of requests with an uncached key shares one table lookup", async () => {
    const table = slowTenants(() => tenant("acme"));
    const auth = new Authenticator({ tenants: table.store, seen });
    const calls = Array.from({ length: 20 }, () => auth.authenticate(headers, ""));
    await flush();
    expect(table.lookups()).toBe(1);
    table.answerAll();
    const principals = await Promise.all(calls);
    expect(principals.map((p) => p.tenant.tenant)).toEqual(Array(20).fill("acme"));
    // …and the next one is answered from the cache.
    await auth.authenticate(headers, "");
    expect(table.lookups()).toBe(1);
  });

  it("renews a found tenant in the background before it expires, without making a request wait", async () => {
    const { auth, table, clock, tenantIs } = await cachedAcme();

    clock.now += 7_000; // 70 % of its time: served from the cache, no lookup
    await auth.authenticate(headers, "");
    expect(table.lookups()).toBe(1);

    clock.now += 2_000; // past 80 %: answered at once from the cache while one renewal runs
    tenantIs(tenant("acme", true));
    await expect(auth.authenticate(headers, "")).resolves.toMatchObject({ tenant: { tenant: "acme" } });
    await auth.authenticate(headers, "");
    expect(table.lookups()).toBe(2);

    // The renewal read the key revoked: from then on it is refused.
    table.answerAll();
    await flush();
    await expect(auth.authenticate(headers, "")).rejects.toThrow(/invalid API key/);
    expect(table.lookups()).toBe(2);
  });

  it("an entry past its time is not served: the request waits for the table", async () => {
    const { auth, table, clock, tenantIs } = await cachedAcme();

    clock.now += 10_001;
    tenantIs(tenant("acme", true));
    const late = auth.authenticate(headers, "");
    let settled = false;
    late.then(
      () => (settled = true),
      () => (settled = true),
    );
    await flush();
    expect(settled).toBe(false);
    table.answerAll();
    await expect(late).rejects.toThrow(/invalid API key/);
  });

  it("a failed lookup answers 503 to every request that shared it, and the next one asks again", async () => {
    let fail = true;
    let lookups = 0;
    const store = {
      findByKeyHash: async () => {
        lookups += 1;
        await flush();
        if (fail) throw new Error("table unavailable");
        return tenant("acme");
      },
    } as unknown as TenantStore;
    const auth = new Authenticator({ tenants: store, seen });
    const results = await Promise.allSettled([
      auth.authenticate(headers, ""),
      auth.authenticate(headers, ""),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason.name).toBe("UnavailableError");
    expect(lookups).toBe(1);
    fail = false;
    await expect(auth.authenticate(headers, "")).resolves.toMatchObject({ tenant: { tenant: "acme" } });
    expect(lookups).toBe(2);
  });
});
