import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createLogger } from "../functions/shared/logger.ts";
import { createTableInput, INDEXES, TABLE_SPECS } from "../functions/shared/resources.ts";
import { startTestStack, type TestStack } from "../test/helpers/emulators.ts";
import { type Dashboard, startDashboard } from "./server.ts";

describe("the dashboard over a requests table made before its indexes", () => {
  let stack: TestStack;
  let dashboard: Dashboard;
  beforeAll(async () => {
    stack = await startTestStack({ bootstrap: false });
    const spec = TABLE_SPECS.requests;
    const old = {
      ...spec,
      indexes: spec.indexes!.filter((i) => i.name !== INDEXES.recentByDay && i.name !== INDEXES.byTenant),
    };
    await stack.dynamo.send(new CreateTableCommand(createTableInput(stack.prefix, old)));
    await bootstrap({ sqs: stack.sqs, dynamo: stack.dynamo, prefix: stack.prefix });
    dashboard = await startDashboard({
      sqs: stack.sqs,
      ddb: stack.ddb,
      prefix: stack.prefix,
      port: 0,
      devMode: true,
      logger: createLogger({ level: "silent" }),
    });
  });
  afterAll(async () => {
    await dashboard?.stop();
    await stack.stop();
  });

  it("says what is missing and how to fix it, and shows the rest", async () => {
    const page = await (await fetch(`${dashboard.url}/`, { headers: { accept: "text/html" } })).text();
    expect(page).toContain("deepqueue bootstrap");
    expect(page).toContain("delete .deepqueue/");
    expect(page).toContain(`${stack.prefix}-requests-dlq`);
  });
});
