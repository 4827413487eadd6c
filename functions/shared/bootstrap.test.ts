import { CreateTableCommand, DescribeTableCommand, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { GetQueueAttributesCommand, ListQueuesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { bootstrap, ensureQueueWithDlq } from "./bootstrap.ts";
import { TABLES } from "./names.ts";
import { createTableInput, INDEXES, TABLE_SPECS } from "./resources.ts";

describe("bootstrap against the emulators", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack.stop());

  it("creates the pipeline queues with DLQs and a redrive policy of 5 receives", async () => {
    expect(stack.report.queues.map((q) => q.name)).toEqual([
      `${stack.prefix}-requests`,
      `${stack.prefix}-inference`,
      `${stack.prefix}-inference-batch`,
      `${stack.prefix}-delivery`,
      `${stack.prefix}-batches`,
    ]);
    for (const queue of stack.report.queues) {
      const attrs = await stack.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ["RedrivePolicy"] }),
      );
      const policy = JSON.parse(attrs.Attributes!.RedrivePolicy!);
      expect(policy.maxReceiveCount).toBe(5);
      expect(policy.deadLetterTargetArn).toMatch(new RegExp(`${queue.name}-dlq$`));
    }
  });

  it("creates every table and says where TTL is unsupported", async () => {
    const tables = (await stack.dynamo.send(new ListTablesCommand({}))).TableNames ?? [];
    for (const kind of TABLES) expect(tables).toContain(`${stack.prefix}-${kind}`);
    // dynalite has no UpdateTimeToLive: reported, not fatal.
    expect(stack.report.tables.find((t) => t.name.endsWith("-cache"))?.ttl).toBe("unsupported");
    expect(stack.report.tables.find((t) => t.name.endsWith("-tenants"))?.ttl).toBe("none");
  });

  it("creates the files bucket once", async () => {
    expect(stack.report.buckets).toEqual([{ name: `${stack.prefix}-files`, created: true }]);
    const again = await bootstrap({
      sqs: stack.sqs,
      dynamo: stack.dynamo,
      s3: stack.s3,
      prefix: stack.prefix,
    });
    expect(again.buckets).toEqual([{ name: `${stack.prefix}-files`, created: false }]);
  });

  it("is a no-op the second time", async () => {
    const before = (await stack.sqs.send(new ListQueuesCommand({ QueueNamePrefix: stack.prefix }))).QueueUrls;
    const again = await bootstrap({ sqs: stack.sqs, dynamo: stack.dynamo, prefix: stack.prefix });
    expect(again.queues.every((q) => !q.created)).toBe(true);
    expect(again.tables.every((t) => !t.created)).toBe(true);
    const after = (await stack.sqs.send(new ListQueuesCommand({ QueueNamePrefix: stack.prefix }))).QueueUrls;
    expect(after?.sort()).toEqual(before?.sort());
  });

  it("makes a tenant result queue with its DLQ", async () => {
    const report = await ensureQueueWithDlq(stack.sqs, `${stack.prefix}-results-acme`);
    expect(report.created).toBe(true);
    expect(report.dlqUrl).toMatch(/results-acme-dlq$/);
    expect((await ensureQueueWithDlq(stack.sqs, `${stack.prefix}-results-acme`)).created).toBe(false);
  });

  it("asks for the indexes an older requests table lacks, and says which the endpoint did not build", async () => {
    const prefix = `${stack.prefix}old`;
    const spec = TABLE_SPECS.requests;
    // The requests table as the release before the dashboard created it.
    const old = {
      ...spec,
      indexes: spec.indexes!.filter((i) => i.name !== INDEXES.recentByDay && i.name !== INDEXES.byTenant),
    };
    await stack.dynamo.send(new CreateTableCommand(createTableInput(prefix, old)));
    const report = await bootstrap({ sqs: stack.sqs, dynamo: stack.dynamo, prefix });
    const table = report.tables.find((t) => t.name === `${prefix}-requests`)!;
    const described = await stack.dynamo.send(new DescribeTableCommand({ TableName: table.name }));
    const present = (described.Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName);
    // Whatever the endpoint did, the report matches the table: added ones exist, missing ones do not.
    for (const name of table.indexesAdded ?? []) expect(present).toContain(name);
    for (const name of table.indexesMissing ?? []) expect(present).not.toContain(name);
    expect([...(table.indexesAdded ?? []), ...(table.indexesMissing ?? [])].sort()).toEqual(
      [INDEXES.byTenant, INDEXES.recentByDay].sort(),
    );
  });
});
