import { describe, expect, it } from "vitest";
import { TenantLookup } from "./tenant-lookup.ts";
import type { Tenant } from "./tenants.ts";

describe("TenantLookup", () => {
  it("reads each tenant once per TTL, remembering a missing one too", async () => {
    const reads: string[] = [];
    const store = {
      get: async (name: string) => {
        reads.push(name);
        return name === "acme" ? ({ tenant: "acme" } as Tenant) : undefined;
      },
    };
    const lookup = new TenantLookup(store, { ttlMs: 60_000 });
    expect((await lookup.get("acme"))?.tenant).toBe("acme");
    expect(await lookup.get("ghost")).toBeUndefined();
    await lookup.get("acme");
    await lookup.get("ghost");
    expect(reads).toEqual(["acme", "ghost"]);
  });
});
