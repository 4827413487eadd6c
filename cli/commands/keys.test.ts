import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoTenantStore } from "../../functions/shared/stores/tenants.ts";
import { runCli } from "../../test/helpers/cli.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";

describe("deepqueue keys: quotas take 'unlimited' wherever they are set", () => {
  let stack: TestStack;
  let tenants: DynamoTenantStore;
  beforeAll(async () => {
    stack = await startTestStack();
    tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  });
  afterAll(() => stack?.stop());

  it("keys create --daily-requests unlimited --daily-tokens unlimited", async () => {
    const { stdout } = await runCli(
      [
        "keys",
        "create",
        "--tenant",
        "nolimit",
        "--daily-requests",
        "unlimited",
        "--daily-tokens",
        "unlimited",
        "--json",
      ],
      stack.env,
    );
    expect(JSON.parse(stdout)).toMatchObject({ tenant: "nolimit", daily_requests: null, daily_tokens: null });
    expect(await tenants.get("nolimit")).toMatchObject({ daily_requests: null, daily_tokens: null });
  });

  it("keys create with numbers, then keys update back to unlimited", async () => {
    await runCli(
      ["keys", "create", "--tenant", "capped", "--daily-requests", "20", "--daily-tokens", "9000"],
      stack.env,
    );
    expect(await tenants.get("capped")).toMatchObject({ daily_requests: 20, daily_tokens: 9000 });
    const { stdout } = await runCli(
      ["keys", "update", "--tenant", "capped", "--daily-tokens", "unlimited", "--json"],
      stack.env,
    );
    expect(JSON.parse(stdout)).toMatchObject({ daily_requests: 20, daily_tokens: null });
  });

  it("refuses anything else, naming the flag and 'unlimited', and creates nothing", async () => {
    await expect(
      runCli(["keys", "create", "--tenant", "typo", "--daily-tokens", "unlimted"], stack.env),
    ).rejects.toThrow(/--daily-tokens must be a whole number ≥ 1 or 'unlimited', got "unlimted"/);
    await expect(
      runCli(["keys", "create", "--tenant", "typo", "--daily-requests", "0"], stack.env),
    ).rejects.toThrow(/--daily-requests/);
    expect(await tenants.get("typo")).toBeUndefined();
  });
});
