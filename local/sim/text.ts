/**
 * Deterministic generated text: a function of (model, prompt, seed), so a
 * test can send the same request twice and compare. With temperature > 0 and
 * no seed, a random nonce joins the key, so answers vary as a sampled model's do.
 *
 * Every piece is one DeepSeek-V3 token (a common English word with its
 * leading space, or "."), so `completion_tokens` equals what the real
 * tokenizer counts in the text, and a stream can send one token per event.
 */

/** Answers end naturally ("stop") between these lengths; a smaller max_tokens cuts them ("length"). */
export const NATURAL_LENGTH = { min: 8, max: 200 } as const;

// Each word, with a leading space and capitalised, is a single DeepSeek-V3 token (checked by text.test.ts).
// biome-ignore format: a word list reads better packed
export const WORDS = [
  "the", "model", "queue", "batch", "token", "request", "server", "cache", "result", "event", "stream",
  "fast", "small", "large", "data", "time", "system", "value", "state", "worker", "message", "answer",
  "first", "next", "every", "simple", "clear", "good", "new", "one", "two", "three", "more", "less",
  "and", "or", "of", "to", "in", "on", "with", "for", "is", "are", "was", "be", "can", "will", "a",
  "this", "that", "it", "we", "you", "they", "as", "by", "from", "at", "not", "all", "some", "each",
  "when", "then", "so", "but", "if", "which", "what", "how", "also", "only", "just", "still", "well",
  "very", "much", "many", "other", "same", "high", "low", "long", "short", "right", "part", "case",
  "point", "way", "work", "use", "make", "take", "give", "find", "know", "think", "see", "look", "need",
  "help", "show", "run", "start", "stop", "wait", "send", "read", "write", "load", "scale", "call",
  "test", "check", "build", "keep",
] as const;

/** 53-bit string hash (cyrb53): stable across runs and platforms. */
function hashString(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenerateInput {
  model: string;
  /** The prompt, or the chat messages serialised: whatever identifies the request. */
  prompt: string;
  seed?: number | undefined;
  temperature?: number | undefined;
  maxTokens: number;
}

export interface Generated {
  /** One token each; their concatenation is the text. */
  tokens: string[];
  finishReason: "stop" | "length";
}

/**
 * @example
 * const { tokens, finishReason } = generateText({ model: "deepseek-chat", prompt: "Hi", maxTokens: 16 });
 * tokens.join(""); // "Queue the batch ..."
 */
export function generateText(input: GenerateInput): Generated {
  const sampled = (input.temperature ?? 0) > 0 && input.seed === undefined;
  const nonce = sampled ? String(Math.random()) : "";
  const key = `${input.model}\u0000${input.prompt}\u0000${input.seed ?? ""}\u0000${nonce}`;
  const random = seededRandom(hashString(key));
  const natural = NATURAL_LENGTH.min + Math.floor(random() * (NATURAL_LENGTH.max - NATURAL_LENGTH.min + 1));
  const length = Math.min(natural, input.maxTokens);
  const tokens: string[] = [];
  let sentenceLeft = 0;
  for (let i = 0; i < length; i++) {
    if (sentenceLeft === 0 && tokens.length > 0 && tokens[tokens.length - 1] !== ".") {
      tokens.push(".");
      continue;
    }
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    if (sentenceLeft === 0) {
      sentenceLeft = 5 + Math.floor(random() * 10);
      const capital = word[0]!.toUpperCase() + word.slice(1);
      tokens.push(tokens.length === 0 ? capital : ` ${capital}`);
    } else {
      tokens.push(` ${word}`);
    }
    sentenceLeft -= 1;
  }
  // A natural end is a full stop; a cut one ends mid-sentence.
  const last = tokens.length - 1;
  if (natural <= input.maxTokens && last > 0 && tokens[last - 1] !== ".") tokens[last] = ".";
  return { tokens, finishReason: natural <= input.maxTokens ? "stop" : "length" };
}
