import { type RequestRecord, TERMINAL_STATUSES } from "../../events/index.ts";
import type { Logger } from "../shared/logger.ts";
import { OPENAI_ROUTES_DEFAULTS } from "./config.ts";
import { openAiError } from "./errors.ts";
import { AnswerTimeoutError, failedRequestResponse, StreamInterruptedError } from "./failures.ts";
import type { ReplyWait } from "./reply-wait.ts";
import { type CompletionHead, type CompletionKind, StreamChunks, sseData } from "./responses.ts";

export interface CompletionStreamOptions {
  kind: CompletionKind;
  head: CompletionHead;
  wait: ReplyWait;
  /** Epoch ms: past this (the request's deadline plus a grace) the record is read once instead. */
  until: number;
  includeUsage: boolean;
  /** Reads the record once (`GET /v1/requests/{id}`), when no `done` came in time. */
  readOnce: () => Promise<RequestRecord | undefined>;
  logger: Logger;
  /** @default OPENAI_ROUTES_DEFAULTS.keepAliveMs */
  keepAliveMs?: number;
}

/** An SSE comment line: ignored by every client, it keeps an idle connection open. */
const KEEP_ALIVE = ": keep-alive\n\n";

/** The last events of a stream: the finish (completed), or an error event in OpenAI's shape. */
export function streamEnding(chunks: StreamChunks, record: RequestRecord | undefined, id: string): string {
  if (record?.status === "completed") {
    return chunks.contradicts(record)
      ? sseData(openAiError(new StreamInterruptedError(id)).body)
      : chunks.finish(record);
  }
  if (record && TERMINAL_STATUSES.includes(record.status)) return sseData(failedRequestResponse(record).body);
  // OpenAI's clients raise an `error` payload in a stream as an APIError.
  return sseData(openAiError(new AnswerTimeoutError(id)).body);
}

/**
 * The body of a streamed completion: a web ReadableStream of server-sent events, pulled as the
 * HTTP adapter writes them, each from the next reply: the role chunk, one chunk per `delta`, then
 * the finish built from the `done` record (StreamChunks). Cancelling it (the caller went away)
 * ends the wait at once.
 *
 * @example return { statusCode: 200, headers: { "content-type": "text/event-stream" }, body: completionStream(options) };
 */
export function completionStream(options: CompletionStreamOptions): ReadableStream<string> {
  const chunks = new StreamChunks(options.kind, options.head, { includeUsage: options.includeUsage });
  const keepAliveMs = options.keepAliveMs ?? OPENAI_ROUTES_DEFAULTS.keepAliveMs;
  const abort = new AbortController();
  return new ReadableStream<string>({
    start(controller) {
      const first = chunks.start();
      if (first) controller.enqueue(first);
    },
    async pull(controller) {
      const next = await options.wait.next(Math.min(options.until, Date.now() + keepAliveMs), abort.signal);
      if (abort.signal.aborted) return;
      if (next.type === "delta") {
        const chunk = chunks.delta(next.text);
        if (chunk) controller.enqueue(chunk);
        return;
      }
      if (next.type === "timeout" && Date.now() < options.until) {
        controller.enqueue(KEEP_ALIVE);
        return;
      }
      options.wait.close();
      const record = next.type === "done" && !next.claimChecked ? next.record : await options.readOnce();
      controller.enqueue(streamEnding(chunks, record, options.head.id));
      controller.close();
    },
    cancel() {
      abort.abort();
      options.wait.close();
      options.logger.debug({ request_id: options.head.id }, "stream cancelled: the caller went away");
    },
  });
}
