import {
  GetQueueAttributesCommand,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { DeepqueueError, InvalidRequestError } from "../functions/shared/errors.ts";
import type { Logger } from "../functions/shared/logger.ts";
import {
  DLQ_SUFFIX,
  dlqName,
  PIPELINE_QUEUES,
  queueName,
  resultQueueName,
} from "../functions/shared/names.ts";
import { QueueUrls } from "../functions/shared/queues.ts";
import { type RedriveReport, redrive } from "../functions/shared/redrive.ts";
import type { TenantStore } from "../functions/shared/stores/tenants.ts";
import type { DailyUsage, UsageStore } from "../functions/shared/stores/usage.ts";
import { VLLM_METRICS } from "../functions/shared/vllm-metrics.ts";
import { DASHBOARD_DEFAULTS } from "./config.ts";
import { decodeBody, maskString } from "./mask.ts";
import {
  type Buckets,
  bucketDelta,
  histogramBuckets,
  histogramQuantile,
  parsePrometheus,
  sumOf,
} from "./prometheus.ts";

/** One reading of a queue's approximate counts (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html). */
export interface QueueSample {
  at: number;
  visible: number;
  inFlight: number;
  delayed: number;
}

/**
 * What is known of a queue's oldest message. SQS has no attribute for it
 * (CloudWatch's ApproximateAgeOfOldestMessage is a CloudWatch metric, absent
 * from the emulators), and peeking would raise the receive counts that send
 * messages to the DLQ. So: on a pipeline queue, the time since the dashboard
 * last saw it empty is an upper bound (every message now in it arrived
 * after); on a DLQ, which has no receive limit, the oldest SentTimestamp of
 * the messages peeked is a lower bound.
 */
export type OldestAge =
  | { kind: "empty" }
  | { kind: "at-most"; seconds: number }
  | { kind: "at-least"; seconds: number }
  | { kind: "unknown"; watchingSeconds: number };

export interface QueueView {
  name: string;
  /** The DLQ's source queue, for DLQs. */
  source?: string;
  dlq: boolean;
  /** Present when the queue could not be read. */
  error?: string;
  latest?: QueueSample;
  oldest: OldestAge;
  history: QueueSample[];
}

export interface PeekedMessage {
  id: string;
  sentAt?: string;
  receiveCount?: number;
  body: string;
  json: boolean;
  attributes: Record<string, string>;
  /** Why deepqueue dead-lettered it, when it said (`deepqueue-error` attribute, or deliver's `dqfailure`). */
  failure?: string;
}

export interface RedriveJob {
  dlq: string;
  source: string;
  state: "running" | "done" | "failed";
  startedAt: number;
  finishedAt?: number;
  report?: RedriveReport;
  error?: string;
}

export interface ModelServerView {
  url: string;
  up: boolean;
  error?: string;
  running?: number;
  waiting?: number;
  /** Over the history window; undefined when no request finished in it. */
  ttftP50?: number;
  ttftP95?: number;
  windowSeconds: number;
  checkedAt?: number;
}

export interface TenantView {
  tenant: string;
  revoked: boolean;
  usage: DailyUsage;
  dailyRequests: number | null;
  dailyTokens: number | null;
}

export interface MonitorOptions {
  sqs: SQSClient;
  tenants: Pick<TenantStore, "list">;
  usage: Pick<UsageStore, "get">;
  prefix: string;
  modelMetricsUrls: readonly string[];
  logger: Logger;
  /** While a page is open. @default DASHBOARD_DEFAULTS.pollSeconds × 1000 */
  pollMs?: number;
  /** While no page is open (the history keeps going, more coarsely). @default DASHBOARD_DEFAULTS.idlePollSeconds × 1000 */
  idlePollMs?: number;
  /** @default DASHBOARD_DEFAULTS.historyMinutes */
  historyMinutes?: number;
  /** @default DASHBOARD_DEFAULTS.tenantPollSeconds × 1000 */
  tenantPollMs?: number;
  /** @default DASHBOARD_DEFAULTS.dlqPeekSeconds × 1000 */
  dlqPeekMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** How long one request to the dashboard counts as someone watching it. */
const WATCHED_FOR_MS = 60_000;

const QUEUE_ATTRIBUTES = [
  "ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible",
  "ApproximateNumberOfMessagesDelayed",
] as const;

/**
 * Reads the pipeline every poll (queue counts, model servers; tenants and
 * DLQ contents less often), keeps the last minutes in memory for the
 * sparklines and the TTFT window, and runs redrives in the background.
 * Subscribers (open pages) are called after every poll. While nobody
 * watches — no subscriber, no request to the dashboard for a minute — it
 * polls at the idle pace: every read is an SQS or HTTP call, and an
 * unwatched dashboard (the one `npm start` runs) need not make them every
 * two seconds. Being watched again brings a poll right away.
 *
 * @example const monitor = new PipelineMonitor({ sqs, tenants, usage, prefix, modelMetricsUrls, logger }); monitor.start();
 */
export class PipelineMonitor {
  readonly #options: MonitorOptions;
  readonly #urls: QueueUrls;
  readonly #now: () => number;
  readonly #pollMs: number;
  readonly #idlePollMs: number;
  readonly #historyMs: number;
  readonly #startedAt: number;
  readonly #queues = new Map<string, QueueView>();
  readonly #lastEmpty = new Map<string, number>();
  readonly #peeked = new Map<string, { at: number; messages: PeekedMessage[] }>();
  readonly #models = new Map<string, ModelServerView & { ttft: Array<{ at: number; buckets: Buckets }> }>();
  readonly #jobs = new Map<string, RedriveJob>();
  readonly #running = new Set<Promise<unknown>>();
  readonly #listeners = new Set<() => void>();
  #tenants: TenantView[] = [];
  #tenantsReadAt = 0;
  #tenantsError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  /** The poll loop, once started (being watched again runs it early). */
  #loop: (() => Promise<void>) | undefined;
  /** Until when a request to the dashboard counts as someone watching. */
  #watchedUntil = 0;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(options: MonitorOptions) {
    this.#options = options;
    this.#urls = new QueueUrls(options.sqs);
    this.#now = options.now ?? Date.now;
    this.#pollMs = options.pollMs ?? DASHBOARD_DEFAULTS.pollSeconds * 1000;
    this.#idlePollMs = Math.max(
      this.#pollMs,
      options.idlePollMs ?? DASHBOARD_DEFAULTS.idlePollSeconds * 1000,
    );
    this.#historyMs = (options.historyMinutes ?? DASHBOARD_DEFAULTS.historyMinutes) * 60_000;
    this.#startedAt = this.#now();
  }

  /** Polls now, then every poll interval (the idle one while no page is open), until stop(). */
  start(): Promise<void> {
    const loop = async () => {
      if (this.#stopped) return;
      this.#timer = undefined;
      this.#polling = this.poll().catch((error: unknown) =>
        this.#options.logger.warn({ err: error }, "dashboard poll failed"),
      );
      await this.#polling;
      this.#polling = undefined;
      if (this.#stopped) return;
      this.#timer = setTimeout(loop, this.#watched() ? this.#pollMs : this.#idlePollMs);
    };
    this.#loop = loop;
    return loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#polling;
    await Promise.allSettled([...this.#running]);
  }

  /** Called after every poll; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    const wasWatched = this.#watched();
    this.#listeners.add(listener);
    if (!wasWatched) this.#pollSoon();
    return () => this.#listeners.delete(listener);
  }

  /** A request to the dashboard: someone is looking, for the next minute. */
  watch(): void {
    const wasWatched = this.#watched();
    this.#watchedUntil = this.#now() + WATCHED_FOR_MS;
    if (!wasWatched) this.#pollSoon();
  }

  #watched(): boolean {
    return this.#listeners.size > 0 || this.#now() < this.#watchedUntil;
  }

  /** Waiting at the idle pace: poll now (the watched pace follows). A poll in flight is left to finish. */
  #pollSoon(): void {
    if (!this.#timer || !this.#loop) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#loop, 0);
  }

  /** One round of reads; errors are shown on the page, never thrown. */
  async poll(): Promise<void> {
    const now = this.#now();
    // Tenants, and their result queues (two reads each), at the slower tenant pace: a deployment
    // with hundreds of tenants must not cost hundreds of SQS calls every two seconds.
    const slow =
      now - this.#tenantsReadAt >=
      (this.#options.tenantPollMs ?? DASHBOARD_DEFAULTS.tenantPollSeconds * 1000);
    if (slow) await this.#readTenants(now);
    const names = [
      ...PIPELINE_QUEUES.map((q) => queueName(this.#options.prefix, q)),
      ...(slow ? this.#tenants.map((t) => resultQueueName(this.#options.prefix, t.tenant)) : []),
    ];
    await Promise.all([
      ...names.flatMap((name) => [this.#readQueue(name, now), this.#readQueue(dlqName(name), now)]),
      ...this.#options.modelMetricsUrls.map((url) => this.#readModel(url, now)),
    ]);
    await this.#peekDlqs(now);
    for (const listener of this.#listeners) listener();
  }

  queues(): QueueView[] {
    return [...this.#queues.values()];
  }

  queue(name: string): QueueView | undefined {
    return this.#queues.get(name);
  }

  /** The messages last peeked from a DLQ (decoded, secrets masked). */
  deadLetters(dlq: string): PeekedMessage[] {
    return this.#peeked.get(dlq)?.messages ?? [];
  }

  models(): ModelServerView[] {
    return [...this.#models.values()].map(({ ttft: _ttft, ...view }) => view);
  }

  tenants(): { tenants: TenantView[]; error?: string } {
    return { tenants: this.#tenants, ...(this.#tenantsError ? { error: this.#tenantsError } : {}) };
  }

  jobs(): RedriveJob[] {
    return [...this.#jobs.values()];
  }

  /**
   * Starts moving `dlq`'s messages back to its source queue (the shared
   * redrive: SQS's move task, or receive-send-delete where the endpoint has
   * none), unless one is already running for it.
   */
  startRedrive(dlq: string): RedriveJob {
    const queue = this.#queues.get(dlq);
    if (!queue?.dlq || !queue.source)
      throw new InvalidRequestError(`"${dlq}" is not a dead-letter queue this dashboard shows`);
    const running = this.#jobs.get(dlq);
    if (running?.state === "running") return running;
    const job: RedriveJob = { dlq, source: queue.source, state: "running", startedAt: this.#now() };
    this.#jobs.set(dlq, job);
    const run = redrive({
      sqs: this.#options.sqs,
      prefix: this.#options.prefix,
      queue: queue.source,
      signal: this.#abort.signal,
    })
      .then((report) => {
        Object.assign(job, { state: "done", report, finishedAt: this.#now() });
        this.#peeked.delete(dlq);
        this.#options.logger.info({ dlq, moved: report.moved, method: report.method }, "redrive finished");
      })
      .catch((error: unknown) => {
        Object.assign(job, { state: "failed", error: describe(error), finishedAt: this.#now() });
        this.#options.logger.warn({ dlq, err: error }, "redrive failed");
      })
      .finally(() => {
        this.#running.delete(run);
        if (this.#stopped) return;
        // Show the result now, not at the next (maybe slow) read of these two queues.
        const now = this.#now();
        void Promise.all([this.#readQueue(dlq, now), this.#readQueue(job.source, now)]).then(() => {
          for (const listener of this.#listeners) listener();
        });
      });
    this.#running.add(run);
    return job;
  }

  async #readTenants(now: number): Promise<void> {
    try {
      const all = await this.#options.tenants.list();
      this.#tenants = await Promise.all(
        all.map(async (t) => ({
          tenant: t.tenant,
          revoked: Boolean(t.revoked_at),
          usage: await this.#options.usage.get(t.tenant),
          dailyRequests: t.daily_requests,
          dailyTokens: t.daily_tokens,
        })),
      );
      this.#tenantsError = undefined;
    } catch (error) {
      this.#tenantsError = describe(error);
    }
    this.#tenantsReadAt = now;
  }

  async #readQueue(name: string, now: number): Promise<void> {
    const dlq = name.endsWith(DLQ_SUFFIX);
    const view: QueueView = this.#queues.get(name) ?? {
      name,
      dlq,
      ...(dlq ? { source: name.slice(0, -DLQ_SUFFIX.length) } : {}),
      oldest: { kind: "unknown", watchingSeconds: 0 },
      history: [],
    };
    this.#queues.set(name, view);
    try {
      const url = await this.#urls.get(name);
      const out = await this.#options.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: [...QUEUE_ATTRIBUTES] }),
        { abortSignal: this.#abort.signal },
      );
      const a = out.Attributes ?? {};
      const sample: QueueSample = {
        at: now,
        visible: Number(a.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
        delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
      };
      delete view.error;
      view.latest = sample;
      view.history.push(sample);
      while (view.history.length && view.history[0]!.at < now - this.#historyMs) view.history.shift();
      if (sample.visible + sample.inFlight + sample.delayed === 0) this.#lastEmpty.set(name, now);
      view.oldest = this.#oldest(view, now);
    } catch (error) {
      this.#urls.forget(name);
      view.error = describe(error);
    }
  }

  #oldest(view: QueueView, now: number): OldestAge {
    const s = view.latest;
    if (!s || s.visible + s.inFlight + s.delayed === 0) return { kind: "empty" };
    if (view.dlq) {
      const sent = this.deadLetters(view.name)
        .map((m) => (m.sentAt ? Date.parse(m.sentAt) : Number.NaN))
        .filter(Number.isFinite);
      if (sent.length) return { kind: "at-least", seconds: Math.max(0, (now - Math.min(...sent)) / 1000) };
    }
    const lastEmpty = this.#lastEmpty.get(view.name);
    if (lastEmpty !== undefined) return { kind: "at-most", seconds: (now - lastEmpty) / 1000 };
    return { kind: "unknown", watchingSeconds: (now - this.#startedAt) / 1000 };
  }

  async #peekDlqs(now: number): Promise<void> {
    const every = this.#options.dlqPeekMs ?? DASHBOARD_DEFAULTS.dlqPeekSeconds * 1000;
    await Promise.all(
      [...this.#queues.values()]
        .filter((q) => q.dlq && !q.error)
        .map(async (q) => {
          // In flight counts too: an emulator may report a message peeked with VisibilityTimeout 0 as such.
          const count = (q.latest?.visible ?? 0) + (q.latest?.inFlight ?? 0) + (q.latest?.delayed ?? 0);
          if (count === 0) {
            this.#peeked.delete(q.name);
            return;
          }
          const last = this.#peeked.get(q.name);
          if (last && now - last.at < every && last.messages.length > 0) return;
          try {
            // VisibilityTimeout 0 leaves the messages visible. A DLQ has no receive limit of its own,
            // so the receive count this raises sends nothing anywhere.
            const out = await this.#options.sqs.send(
              new ReceiveMessageCommand({
                QueueUrl: await this.#urls.get(q.name),
                MaxNumberOfMessages: 10,
                VisibilityTimeout: 0,
                WaitTimeSeconds: 0,
                MessageSystemAttributeNames: ["SentTimestamp", "ApproximateReceiveCount"],
                MessageAttributeNames: ["All"],
              }),
              { abortSignal: this.#abort.signal },
            );
            this.#peeked.set(q.name, { at: now, messages: (out.Messages ?? []).map(toPeeked) });
            q.oldest = this.#oldest(q, now);
          } catch (error) {
            this.#options.logger.debug({ err: error, dlq: q.name }, "DLQ peek failed");
          }
        }),
    );
  }

  async #readModel(url: string, now: number): Promise<void> {
    const view = this.#models.get(url) ?? { url, up: false, windowSeconds: 0, ttft: [] };
    this.#models.set(url, view);
    try {
      const res = await (this.#options.fetch ?? fetch)(url, {
        signal: AbortSignal.any([AbortSignal.timeout(Math.max(1000, this.#pollMs)), this.#abort.signal]),
      });
      if (!res.ok) throw new DeepqueueError(`HTTP ${res.status}`);
      const samples = parsePrometheus(await res.text());
      view.up = true;
      delete view.error;
      view.running = sumOf(samples, VLLM_METRICS.numRequestsRunning);
      view.waiting = sumOf(samples, VLLM_METRICS.numRequestsWaiting);
      view.ttft.push({ at: now, buckets: histogramBuckets(samples, VLLM_METRICS.timeToFirstTokenSeconds) });
      while (view.ttft.length > 1 && view.ttft[0]!.at < now - this.#historyMs) view.ttft.shift();
      const first = view.ttft.length > 1 ? view.ttft[0] : undefined;
      const window = bucketDelta(view.ttft.at(-1)!.buckets, first?.buckets);
      const p50 = histogramQuantile(0.5, window);
      const p95 = histogramQuantile(0.95, window);
      if (p50 === undefined) delete view.ttftP50;
      else view.ttftP50 = p50;
      if (p95 === undefined) delete view.ttftP95;
      else view.ttftP95 = p95;
      view.windowSeconds = first ? (now - first.at) / 1000 : 0;
    } catch (error) {
      view.up = false;
      view.error = describe(error);
      delete view.running;
      delete view.waiting;
    }
    view.checkedAt = now;
  }
}

function toPeeked(message: {
  MessageId?: string;
  Body?: string;
  Attributes?: Record<string, string>;
  MessageAttributes?: Record<string, MessageAttributeValue>;
}): PeekedMessage {
  const decoded = decodeBody(message.Body);
  const attributes = Object.fromEntries(
    Object.entries(message.MessageAttributes ?? {}).map(([k, v]) => [
      k,
      maskString(v.StringValue ?? (v.BinaryValue ? "(binary)" : "")),
    ]),
  );
  let failure = attributes["deepqueue-error"];
  if (!failure && decoded.json) {
    try {
      const parsed = JSON.parse(message.Body ?? "") as { dqfailure?: unknown };
      if (typeof parsed.dqfailure === "string") failure = maskString(parsed.dqfailure);
    } catch {
      // not JSON after all: no failure field
    }
  }
  const sent = Number(message.Attributes?.SentTimestamp);
  const receives = Number(message.Attributes?.ApproximateReceiveCount);
  return {
    id: message.MessageId ?? "",
    ...(Number.isFinite(sent) && sent > 0 ? { sentAt: new Date(sent).toISOString() } : {}),
    ...(Number.isFinite(receives) ? { receiveCount: receives } : {}),
    body: decoded.text,
    json: decoded.json,
    attributes,
    ...(failure ? { failure } : {}),
  };
}

function describe(error: unknown): string {
  const e = error as { name?: string; message?: string };
  return maskString(`${e?.name && e.name !== "Error" ? `${e.name}: ` : ""}${e?.message ?? String(error)}`);
}
