import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { Coalescer } from "./coalescer.ts";
import { DeepqueueError } from "./errors.ts";

/** One entry of a SendMessageBatch was refused: only that entry's sender sees it. */
export class MessageNotSentError extends DeepqueueError {
  constructor(code: string | undefined, message: string | undefined) {
    super(`message not sent: ${code} ${message ?? ""}`);
    this.name = "MessageNotSentError";
  }
}

export const BATCH_SENDER_DEFAULTS = {
  /** SendMessageBatch calls in flight at once; sends made meanwhile gather into the next. */
  maxConcurrent: 2,
};

/** Each field defaults to BATCH_SENDER_DEFAULTS'. */
export type BatchSenderOptions = Partial<typeof BATCH_SENDER_DEFAULTS>;

/** One message for a BatchSender: its JSON body and optional string attributes. */
interface OutgoingMessage {
  body: string;
  attributes?: Record<string, string> | undefined;
}

/**
 * Sends events to one queue through SendMessageBatch: sends made while an
 * earlier batch is still on its way are gathered into the next one (group
 * commit, shared/coalescer.ts), up to ten per call; each caller's promise
 * settles with its own entry's outcome, so one failed entry fails only its
 * record. At low load a send goes out at once, alone.
 *
 * @example const delivery = new BatchSender(sqs, () => queueUrls.get("deepqueue-delivery")); await delivery.send(event);
 */
export class BatchSender {
  readonly #coalescer: Coalescer<OutgoingMessage, void>;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: () => Promise<string>,
    options: BatchSenderOptions = {},
  ) {
    this.#coalescer = new Coalescer<OutgoingMessage, void>(
      { maxBatch: 10, maxConcurrent: options.maxConcurrent ?? BATCH_SENDER_DEFAULTS.maxConcurrent },
      (messages) => this.#sendBatch(messages),
    );
  }

  /** Sends `event` as JSON (or `body` as it is, when a string), with string message attributes. */
  send(event: unknown, attributes?: Record<string, string>): Promise<void> {
    return this.#coalescer.submit({
      body: typeof event === "string" ? event : JSON.stringify(event),
      attributes,
    });
  }

  async #sendBatch(messages: OutgoingMessage[]): Promise<Array<undefined | Error>> {
    const url = await this.queueUrl();
    const out = await this.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        // An undefined MessageAttributes is left out of the request by the SDK.
        Entries: messages.map((m, n) => ({
          Id: String(n),
          MessageBody: m.body,
          MessageAttributes:
            m.attributes &&
            Object.fromEntries(
              Object.entries(m.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
            ),
        })),
      }),
    );
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    return messages.map((_, n) => {
      const failure = failed.get(String(n));
      return failure ? new MessageNotSentError(failure.Code, failure.Message) : undefined;
    });
  }
}
