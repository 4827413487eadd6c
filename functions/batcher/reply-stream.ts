import type { ReplyMessage } from "../../events/index.ts";

export type DeltaMessage = Extract<ReplyMessage, { type: "delta" }>;

/**
 * Forwards one request's streamed answer to its caller's reply queue as `delta` messages,
 * coalesced: the first text goes out at once (the caller's time to first token), later text
 * gathers until `intervalMs` after the previous message, so a request costs at most one message
 * per interval whatever the model's token rate. `seq` counts from 0.
 *
 * @example
 * const stream = new ReplyStream(request.id, (delta) => results.reply(queueUrl, delta), 100);
 * for await (const d of deltas) stream.push(d.content);
 * await stream.close();
 */
export class ReplyStream {
  #buffer = "";
  #seq = 0;
  #lastSentAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  readonly #sends: Array<Promise<unknown>> = [];

  constructor(
    private readonly requestId: string,
    private readonly send: (delta: DeltaMessage) => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Delta messages sent so far: once above 0, the caller has seen part of the answer. */
  get sent(): number {
    return this.#seq;
  }

  push(text: string): void {
    if (text === "") return;
    this.#buffer += text;
    if (this.#timer) return;
    const wait = this.#lastSentAt + this.intervalMs - this.now();
    if (wait <= 0) this.#flush();
    else this.#timer = setTimeout(() => this.#flush(), wait);
  }

  /** Sends what is gathered and waits until every delta is sent (before `done` goes out). */
  async close(): Promise<void> {
    this.#flush();
    await Promise.all(this.#sends);
  }

  /** Drops what is gathered (the answer failed) and stops the timer. */
  abandon(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#buffer = "";
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#buffer === "") return;
    const delta: DeltaMessage = {
      type: "delta",
      request_id: this.requestId,
      seq: this.#seq,
      text: this.#buffer,
    };
    this.#seq += 1;
    this.#buffer = "";
    this.#lastSentAt = this.now();
    this.#sends.push(this.send(delta));
  }
}
