import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { FAILURE_CODES } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { DEFAULT_PREFIX, queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { deliveryEvent, doneMessage, ResultPublisher } from "../shared/results.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import { RECONCILER_DEFAULTS } from "./config.ts";
import { removeOrphanReplyQueues } from "./reply-queues.ts";

const reconciled = counter(
  "deepqueue_reconciled_requests_total",
  "Requests the reconciler ended failed because they were still open past their deadline, by the status they were stuck in",
  ["stuck_in"],
);

/** The reconciler's dependencies and settings; each setting defaults from RECONCILER_DEFAULTS. */
export interface ReconcilerOptions {
  sqs: SQSClient;
  requests: RequestStore;
  logger: Logger;
  /** Resource-name prefix (DEEPQUEUE_PREFIX). @default DEFAULT_PREFIX */
  prefix?: string;
  /** Milliseconds past the deadline before an open request counts as lost. @default RECONCILER_DEFAULTS.graceSeconds × 1000 */
  graceMs?: number;
  /** Shared queue URL resolver; one of its own by default. */
  queueUrls?: QueueUrls;
  now?: () => number;
  /** @default RECONCILER_DEFAULTS.maxPerRun */
  maxPerRun?: number;
  /** Nudges batches past their window or stalled (functions/batches/sweep.ts); run after the requests. */
  sweepBatches?: () => Promise<unknown>;
}

export interface ReconcileReport {
  /** Overdue records looked at. */
  checked: number;
  /** Records this run ended failed (and emitted the failed event for). */
  failed: string[];
  /** Records a worker finished meanwhile: left as they were. */
  raced: number;
}

/**
 * "No accepted request is ever silently lost" (docs/api.md#the-flow): every request still
 * `queued` or `processing` past its deadline plus the grace (its message went
 * to a DLQ, a worker died…) is ended `failed` with `deadline_exceeded`, and
 * its failed result event is sent to the delivery queue, so the tenant's
 * consumers and callback see it (a batch line's end goes to the batch worker instead, which counts
 * it into the batch's error file). The transition is conditional: a worker
 * that finished meanwhile wins, and nothing is emitted twice.
 *
 * @example const report = await runReconcilerOnce({ sqs, requests, logger, graceMs: 300_000 });
 */
export async function runReconcilerOnce(deps: ReconcilerOptions): Promise<ReconcileReport> {
  const queueUrls = deps.queueUrls ?? new QueueUrls(deps.sqs);
  const now = deps.now ?? Date.now;
  const maxPerRun = deps.maxPerRun ?? RECONCILER_DEFAULTS.maxPerRun;
  const graceMs = deps.graceMs ?? RECONCILER_DEFAULTS.graceSeconds * 1000;
  const report: ReconcileReport = { checked: 0, failed: [], raced: 0 };
  const prefix = deps.prefix ?? DEFAULT_PREFIX;
  const deliveryUrl = await queueUrls.get(queueName(prefix, "delivery"));
  const results = new ResultPublisher(deps.sqs, queueUrls, prefix);
  await removeOrphanReplyQueues({ ...deps, prefix });
  while (report.checked < maxPerRun) {
    const page = await deps.requests.listOverdue(now() - graceMs, Math.min(100, maxPerRun - report.checked));
    if (page.length === 0) break;
    for (const stuck of page) {
      report.checked += 1;
      // Queued or with the model (its processing marker): the message and the metric say which.
      const status =
        stuck.status === "queued"
          ? ((await deps.requests.get(stuck.id, { progress: true }))?.status ?? stuck.status)
          : stuck.status;
      const { applied, record } = await deps.requests.fail(stuck.id, {
        code: FAILURE_CODES.deadlineExceeded,
        message: `no answer by the deadline (${stuck.request.deadline_at}); the request was still ${status} and was ended by the reconciler`,
      });
      if (!applied) {
        report.raced += 1;
        continue;
      }
      // The record left the open index with the write above: this send is the event's only chance,
      // so a failure throws (the run is retried) rather than being skipped. A batch line has no
      // event of its own: the batch worker counts it (into the error file) as the batcher's lines.
      if (record.request.batch) await results.lineFinished(record);
      else
        await deps.sqs.send(
          new SendMessageCommand({
            QueueUrl: deliveryUrl,
            MessageBody: JSON.stringify(deliveryEvent(record)),
          }),
        );
      await tellWaitingCaller(deps, record);
      reconciled.inc({ stuck_in: status });
      report.failed.push(record.id);
      deps.logger.warn(
        {
          request_id: record.id,
          tenant: record.tenant,
          stuck_in: status,
          deadline_at: stuck.request.deadline_at,
        },
        "overdue request ended failed",
      );
    }
  }
  await deps.sweepBatches?.();
  return report;
}

/**
 * A caller waiting on an ingest replica (the OpenAI-compatible routes) hears of the failure at once
 * rather than at its own deadline. Best effort: the replica may be gone with its queue.
 */
async function tellWaitingCaller(deps: ReconcilerOptions, record: StoredRequest): Promise<void> {
  const queueUrl = record.request.reply?.queue_url;
  if (!queueUrl) return;
  await deps.sqs
    .send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(doneMessage(record)) }))
    .catch((error: unknown) =>
      deps.logger.debug({ err: error, request_id: record.id }, "the waiting caller's reply queue is gone"),
    );
}

/**
 * Runs the reconciler now and then every `intervalMs` (never two runs at
 * once); a failed run is logged and the next one tries again. `stop()`
 * waits for a run in progress.
 *
 * @example const loop = startReconcilerLoop(deps, { intervalMs: 60_000 }); await loop.stop();
 */
export function startReconcilerLoop(
  deps: ReconcilerOptions,
  options: { intervalMs: number; onReport?: (report: ReconcileReport) => void },
): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = runReconcilerOnce(deps)
      .then((report) => options.onReport?.(report))
      .catch((error: unknown) =>
        deps.logger.error({ err: error }, "reconciler run failed; retrying next interval"),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, options.intervalMs);
      });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
