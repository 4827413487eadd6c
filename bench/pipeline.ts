import { setTimeout as sleep } from "node:timers/promises";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { type HttpClient, NO_ANSWER } from "./load.ts";

/**
 * A producer and a consumer of the pipeline, as a tenant sees it: POST
 * /v1/requests, then the result event on the tenant's result queue. The
 * consumer runs a few long-poll loops, asks SQS for each message's
 * SentTimestamp and ApproximateFirstReceiveTimestamp, and matches events to
 * waiting producers by request id (the event's `subject`).
 */

export interface ResultArrival {
  id: string;
  type: string;
  /** `data.result.source`: model | cache | fallback | static. */
  source?: string;
  createdAt: number;
  completedAt?: number;
  /** Epoch ms: deliver's SendMessage to the tenant queue, and the first receive (SQS system attributes). */
  sentTimestamp: number;
  firstReceiveTimestamp: number;
  /** Epoch ms when this consumer had the message in hand. */
  receivedAt: number;
}

export interface Submitted {
  status: number;
  id?: string;
  /** Epoch ms of the POST's start and of its answer. */
  startedAt: number;
  acceptedAt: number;
  acceptMs: number;
  errorCode?: string;
}

export interface Answered extends Submitted {
  result?: ResultArrival;
  /** Submit → result in the consumer's hand, ms; undefined when refused or not answered in time. */
  e2eMs?: number;
  timedOut?: boolean;
}

export interface SubmitBody {
  prompt?: string;
  messages?: Array<{ role: string; content: string }>;
  max_tokens?: number;
  temperature?: number;
  conversation_id?: string;
  cache?: boolean;
}

export interface PipelineClient {
  submit(body: SubmitBody): Promise<Submitted>;
  /** Waits (up to `timeoutMs`) for a submitted request's result event. */
  waitFor(submitted: Submitted, timeoutMs: number): Promise<Answered>;
  /** Submits and waits (up to `timeoutMs`) for the result event. */
  answer(body: SubmitBody, timeoutMs: number): Promise<Answered>;
  stop(): Promise<void>;
}

interface ResultEventBody {
  id: string;
  type: string;
  subject: string;
  data: { created_at: string; completed_at?: string; result?: { source?: string } };
}

/** @example const client = startPipelineClient({ http, sqs, ingestUrl, apiKey, resultQueueUrl }); */
export function startPipelineClient(options: {
  http: HttpClient;
  sqs: SQSClient;
  ingestUrl: string;
  apiKey: string;
  resultQueueUrl: string;
  /** Parallel long-poll loops on the result queue. @default 4 */
  receivers?: number;
}): PipelineClient {
  const waiters = new Map<string, (arrival: ResultArrival) => void>();
  const early = new Map<string, ResultArrival>();
  const abort = new AbortController();
  let running = true;

  const deliver = (message: Message, receivedAt: number) => {
    const event = JSON.parse(message.Body ?? "{}") as ResultEventBody;
    const attrs = message.Attributes ?? {};
    const arrival: ResultArrival = {
      id: event.subject,
      type: event.type,
      ...(event.data?.result?.source ? { source: event.data.result.source } : {}),
      createdAt: Date.parse(event.data?.created_at ?? ""),
      ...(event.data?.completed_at ? { completedAt: Date.parse(event.data.completed_at) } : {}),
      sentTimestamp: Number(attrs.SentTimestamp ?? Number.NaN),
      firstReceiveTimestamp: Number(attrs.ApproximateFirstReceiveTimestamp ?? Number.NaN),
      receivedAt,
    };
    const waiter = waiters.get(arrival.id);
    if (waiter) {
      waiters.delete(arrival.id);
      waiter(arrival);
    } else if (!early.has(arrival.id)) {
      early.set(arrival.id, arrival);
    }
  };

  const loop = async () => {
    while (running) {
      try {
        const out = await options.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: options.resultQueueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ["SentTimestamp", "ApproximateFirstReceiveTimestamp"],
          }),
          { abortSignal: abort.signal },
        );
        const receivedAt = Date.now();
        const messages = out.Messages ?? [];
        for (const m of messages) deliver(m, receivedAt);
        if (messages.length) {
          await options.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: options.resultQueueUrl,
              Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
            }),
          );
        }
      } catch {
        if (!running) return;
        await sleep(200);
      }
    }
  };
  const loops = Array.from({ length: options.receivers ?? 4 }, loop);

  const submit = async (body: SubmitBody): Promise<Submitted> => {
    const startedAt = Date.now();
    const answer = await options.http.request(`${options.ingestUrl}/v1/requests`, {
      method: "POST",
      headers: { authorization: `Bearer ${options.apiKey}` },
      body: JSON.stringify(body),
      timeoutMs: 30_000,
    });
    const acceptedAt = Date.now();
    let id: string | undefined;
    let errorCode: string | undefined;
    try {
      const parsed = JSON.parse(answer.body) as { id?: string; error?: { code?: string } };
      id = parsed.id;
      errorCode = parsed.error?.code;
    } catch {
      errorCode = answer.status === NO_ANSWER ? "no_answer" : "bad_body";
    }
    return {
      status: answer.status,
      ...(id ? { id } : {}),
      startedAt,
      acceptedAt,
      acceptMs: answer.ms,
      ...(errorCode ? { errorCode } : {}),
    };
  };

  const waitFor = async (submitted: Submitted, timeoutMs: number): Promise<Answered> => {
    if (submitted.status !== 202 || !submitted.id) return submitted;
    const id = submitted.id;
    const arrival =
      early.get(id) ??
      (await new Promise<ResultArrival | undefined>((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(id);
          resolve(undefined);
        }, timeoutMs);
        waiters.set(id, (a) => {
          clearTimeout(timer);
          resolve(a);
        });
      }));
    early.delete(id);
    if (!arrival) return { ...submitted, timedOut: true };
    return { ...submitted, result: arrival, e2eMs: arrival.receivedAt - submitted.startedAt };
  };

  return {
    submit,
    waitFor,
    answer: async (body, timeoutMs) => waitFor(await submit(body), timeoutMs),
    async stop() {
      running = false;
      abort.abort();
      await Promise.allSettled(loops);
    },
  };
}
