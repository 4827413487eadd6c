/**
 * The worker-thread side of `TokenizerPool`: counts a prompt's tokens off the
 * main event loop. Plain TypeScript that Node 24 runs as is (type stripping),
 * compiled to .js with the rest in the image.
 */
import { type ChatMessageLike, countPromptTokens, warmTokenizer } from "./tokenizer.ts";

export interface TokenizeTask {
  prompt?: string;
  messages?: ChatMessageLike[];
}

warmTokenizer();

/** Prompt tokens as vLLM counts them, and the milliseconds the count took on this thread. */
export default function tokenize(task: TokenizeTask): { tokens: number; ms: number } {
  const started = performance.now();
  const tokens = countPromptTokens(task);
  return { tokens, ms: performance.now() - started };
}
