import { Piscina } from "piscina";
import { DeepqueueError } from "./errors.ts";
import { type ChatMessageLike, countPromptTokens } from "./tokenizer.ts";

/**
 * Counts prompt tokens without holding the event loop: short prompts inline
 * (≈0.05 ms, cheaper than a thread hop), long ones on a small pool of worker
 * threads (piscina), so one tenant's 250 KiB prompt — seconds of CPU — never
 * delays another tenant's accept. The queue in front of the threads is bounded:
 * when it is full, `count` rejects with `TokenizerBusyError` and the caller
 * sheds load (503 + Retry-After) instead of letting latency grow without limit.
 */
export const TOKENIZER_POOL_DEFAULTS = {
  /** Prompts with more characters than this go to a worker thread. */
  offloadChars: 16_384,
  /** Worker threads; each holds its own copy of the tokenizer (~100 MB). */
  threads: 1,
  /** Long prompts waiting for a thread before new ones are refused. */
  maxQueue: 16,
};

/** Each field defaults to TOKENIZER_POOL_DEFAULTS'. */
export type TokenizerPoolOptions = Partial<typeof TOKENIZER_POOL_DEFAULTS>;

export interface PromptInput {
  prompt?: string | undefined;
  messages?: readonly ChatMessageLike[] | undefined;
}

export interface TokenCount {
  tokens: number;
  /** Milliseconds the count took on its thread. */
  ms: number;
}

/** The worker threads' queue is full: shed the request (503 + Retry-After). */
export class TokenizerBusyError extends DeepqueueError {
  constructor() {
    super("too many long prompts are being counted");
    this.name = "TokenizerBusyError";
  }
}

/** Characters of a prompt: what decides inline or off-loop. */
function promptChars(input: PromptInput): number {
  if (input.messages) {
    let n = 0;
    for (const m of input.messages) {
      if (typeof m.content === "string") n += m.content.length;
      else if (m.content) for (const part of m.content) n += part.text?.length ?? 0;
    }
    return n;
  }
  return input.prompt?.length ?? 0;
}

/**
 * @example
 * const pool = new TokenizerPool();
 * const tokens = await pool.count({ prompt }); // inline when short, on a worker thread when long
 * await pool.close();
 */
export class TokenizerPool {
  readonly #offloadChars: number;
  readonly #threads: number;
  readonly #maxQueue: number;
  #piscina: Piscina | undefined;

  constructor(options: TokenizerPoolOptions = {}) {
    const o = { ...TOKENIZER_POOL_DEFAULTS, ...options };
    this.#offloadChars = o.offloadChars;
    this.#threads = o.threads;
    this.#maxQueue = o.maxQueue;
  }

  /** The prompt's tokens and the CPU milliseconds counting them took (not the time queued). */
  async count(input: PromptInput): Promise<TokenCount> {
    if (promptChars(input) <= this.#offloadChars) {
      const started = performance.now();
      const tokens = countPromptTokens(input);
      return { tokens, ms: performance.now() - started };
    }
    const pool = this.#pool();
    if (pool.queueSize >= this.#maxQueue) throw new TokenizerBusyError();
    return (await pool.run({ prompt: input.prompt, messages: input.messages })) as TokenCount;
  }

  /** Starts the threads now (each loads the tokenizer, ~0.6 s) instead of on the first long prompt. */
  warm(): void {
    this.#pool();
  }

  async close(): Promise<void> {
    const pool = this.#piscina;
    this.#piscina = undefined;
    await pool?.close({ force: true });
  }

  #pool(): Piscina {
    // .ts under tsx/vitest/Node's type stripping, .js once compiled into build/.
    const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
    this.#piscina ??= new Piscina({
      filename: new URL(`./tokenize-worker${extension}`, import.meta.url).href,
      minThreads: this.#threads,
      maxThreads: this.#threads,
      // Piscina's own queue is unbounded by default; the check in count() bounds it.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
    return this.#piscina;
  }
}
