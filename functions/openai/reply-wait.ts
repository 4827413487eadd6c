import type { ReplyMessage, RequestRecord } from "../../events/index.ts";
import type { ReplyInbox } from "./reply-queue.ts";

/** What a waiting caller gets next: answer text, the final record, or nothing in time. */
export type ReplyEvent =
  | { type: "delta"; text: string }
  /** `claimChecked`: the record came without its text (too large for a message); read it whole. */
  | { type: "done"; record: RequestRecord; claimChecked: boolean }
  | { type: "timeout" };

/**
 * One caller waiting for its request's replies, in order. SQS standard queues may reorder or
 * repeat messages: deltas are put back in `seq` order (a later one waits for the gap to fill) and
 * a repeated one is dropped; `done` ends the wait whatever deltas are still missing (the final
 * text is in its record).
 *
 * @example
 * const wait = new ReplyWait(replies, requestId);
 * for (let e = await wait.next(deadline); e.type === "delta"; e = await wait.next(deadline)) write(e.text);
 * wait.close();
 */
export class ReplyWait {
  readonly #ready: ReplyEvent[] = [];
  readonly #early = new Map<number, string>();
  readonly #off: () => void;
  #nextSeq = 0;
  #done = false;
  #wake: (() => void) | undefined;

  constructor(inbox: Pick<ReplyInbox, "subscribe">, requestId: string) {
    this.#off = inbox.subscribe(requestId, (message) => this.#receive(message));
  }

  /** The next event, or `timeout` once `until` (epoch ms) has passed or `signal` aborts. */
  async next(until: number, signal?: AbortSignal): Promise<ReplyEvent> {
    for (;;) {
      const ready = this.#ready.shift();
      if (ready) return ready;
      const left = until - Date.now();
      if (left <= 0 || signal?.aborted) return { type: "timeout" };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake() {
          clearTimeout(timer);
          signal?.removeEventListener("abort", wake);
          resolve();
        }
        this.#wake = wake;
        signal?.addEventListener("abort", wake, { once: true });
      });
      this.#wake = undefined;
    }
  }

  /** Stops listening (the caller has its answer, or has gone). */
  close(): void {
    this.#off();
    this.#wake?.();
  }

  #receive(message: ReplyMessage): void {
    if (this.#done) return;
    if (message.type === "done") {
      this.#done = true;
      this.#ready.push({ type: "done", record: message.record, claimChecked: message.dataref !== undefined });
    } else {
      if (message.seq < this.#nextSeq) return;
      this.#early.set(message.seq, message.text);
      for (
        let text = this.#early.get(this.#nextSeq);
        text !== undefined;
        text = this.#early.get(this.#nextSeq)
      ) {
        this.#early.delete(this.#nextSeq);
        this.#nextSeq += 1;
        this.#ready.push({ type: "delta", text });
      }
    }
    this.#wake?.();
  }
}
