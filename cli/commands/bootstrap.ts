import type { Command } from "commander";
import { type BootstrapReport, bootstrap } from "../../functions/shared/bootstrap.ts";
import { createS3Client } from "../../functions/shared/s3-client.ts";
import { print, withCliContext } from "../context.ts";

/** Human-readable lines for a bootstrap report. */
function describeBootstrap(report: BootstrapReport): string[] {
  const lines = report.queues.map((q) => `queue ${q.name} (+ -dlq): ${q.created ? "created" : "exists"}`);
  for (const t of report.tables) {
    const ttl =
      t.ttl === "unsupported" ? "; TTL API not supported by this endpoint, expiry is enforced in code" : "";
    const added = t.indexesAdded?.length ? `; index ${t.indexesAdded.join(", ")} added (backfilling)` : "";
    const missing = t.indexesMissing?.length
      ? `; index ${t.indexesMissing.join(", ")} missing: this endpoint cannot add an index to an existing table, recreate it (dev: delete .deepqueue/)`
      : "";
    lines.push(`table ${t.name}: ${t.created ? "created" : "exists"}${ttl}${added}${missing}`);
  }
  for (const b of report.buckets ?? []) lines.push(`bucket ${b.name}: ${b.created ? "created" : "exists"}`);
  return lines;
}

export function registerBootstrap(program: Command): void {
  program
    .command("bootstrap")
    .description("create the queues and tables at the configured endpoints (idempotent)")
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nUses AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_S3 when set (the `dev` stack prints them), else AWS.\nRunning it again changes nothing.",
    )
    .action((options: { json?: boolean }) =>
      withCliContext(async (ctx) => {
        const s3 = createS3Client({ env: ctx.env });
        const report = await bootstrap({
          sqs: ctx.sqs,
          dynamo: ctx.dynamo,
          s3,
          prefix: ctx.env.DEEPQUEUE_PREFIX,
        }).finally(() => s3.destroy());
        if (options.json) print(JSON.stringify(report, null, 2));
        else for (const line of describeBootstrap(report)) print(line);
      }),
    );
}
