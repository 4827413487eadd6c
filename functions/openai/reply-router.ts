import { LRUCache } from "lru-cache";
import type { ReplyMessage } from "../../events/index.ts";
import { REPLY_QUEUE_DEFAULTS } from "./config.ts";

export type ReplyListener = (message: ReplyMessage) => void;

export interface ReplyRouterOptions {
  /** @default REPLY_QUEUE_DEFAULTS.earlyReplyTtlMs */
  earlyReplyTtlMs?: number;
  /** @default REPLY_QUEUE_DEFAULTS.earlyReplyMax */
  earlyReplyMax?: number;
}

/**
 * Hands reply messages to the caller waiting for their request id. A reply can come before its
 * caller is listening (a cache hit answered while the 202 was still on its way back to the route):
 * it is kept for a short while, in a bounded LRU, and given to the caller when it subscribes.
 * Replies for a caller that has gone are kept the same short while, then dropped.
 *
 * @example
 * const off = router.subscribe(id, (m) => console.log(m.type));
 * router.dispatch({ type: "done", request_id: id, record });
 * off();
 */
export class ReplyRouter {
  readonly #listeners = new Map<string, ReplyListener>();
  readonly #early: LRUCache<string, ReplyMessage[]>;

  constructor(options: ReplyRouterOptions = {}) {
    this.#early = new LRUCache({
      max: options.earlyReplyMax ?? REPLY_QUEUE_DEFAULTS.earlyReplyMax,
      ttl: options.earlyReplyTtlMs ?? REPLY_QUEUE_DEFAULTS.earlyReplyTtlMs,
    });
  }

  /** Callers waiting now. */
  get waiting(): number {
    return this.#listeners.size;
  }

  /** Listens for `requestId`'s replies (those already here first); returns the unsubscribe. */
  subscribe(requestId: string, listener: ReplyListener): () => void {
    this.#listeners.set(requestId, listener);
    const early = this.#early.get(requestId);
    if (early) {
      this.#early.delete(requestId);
      for (const message of early) listener(message);
    }
    return () => {
      if (this.#listeners.get(requestId) === listener) this.#listeners.delete(requestId);
    };
  }

  /** Gives `message` to its caller; returns false when none is listening (kept briefly). */
  dispatch(message: ReplyMessage): boolean {
    const listener = this.#listeners.get(message.request_id);
    if (listener) {
      listener(message);
      return true;
    }
    const early = this.#early.get(message.request_id) ?? [];
    early.push(message);
    this.#early.set(message.request_id, early);
    return false;
  }
}
