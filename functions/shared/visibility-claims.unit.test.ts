import { describe, expect, it } from "vitest";
import { claimVisibility, VisibilityClaims, visibilityClaims } from "./visibility-claims.ts";

describe("visibility claims", () => {
  it("registers a claim in the claims the running handler was given, across awaits", async () => {
    const mine = new VisibilityClaims();
    const other = new VisibilityClaims();
    await Promise.all([
      visibilityClaims.run(mine, async () => {
        await new Promise((r) => setImmediate(r));
        claimVisibility("rh-mine");
      }),
      visibilityClaims.run(other, async () => claimVisibility("rh-other")),
    ]);
    expect(mine.has("rh-mine")).toBe(true);
    expect(mine.has("rh-other")).toBe(false);
    expect(other.has("rh-other")).toBe(true);
    mine.delete("rh-mine");
    expect(mine.has("rh-mine")).toBe(false);
  });

  it("does nothing outside a worker (on Lambda)", () => {
    expect(() => claimVisibility("rh")).not.toThrow();
  });
});
