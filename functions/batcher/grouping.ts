import { type Item, isPlainPrompt, streams } from "./item.ts";

/**
 * One model call's worth of requests: a prompt array (`/v1/completions`, up to batchSize prompts),
 * one chat call, or one streamed answer (served alone, whatever its shape).
 */
export type Run<T> =
  | { kind: "prompts"; items: T[] }
  | { kind: "chat"; items: [T] }
  | { kind: "stream"; items: [T] };

/** Requests that may share one model call: same shape, model, max_tokens and temperature. */
function groupKey(request: Item["request"]): string {
  return JSON.stringify([
    isPlainPrompt(request) ? "prompt" : "chat",
    request.model,
    request.max_tokens,
    request.temperature,
  ]);
}

/**
 * Plans the model calls of one SQS batch (the micro-batch): streamed requests alone, compatible
 * plain prompts together in arrays of at most `batchSize`, every chat request its own call.
 *
 * @example planRuns(items, 10) // [{ kind: "prompts", items: [a, b, c] }, { kind: "chat", items: [d] }]
 */
export function planRuns<T extends Pick<Item, "request" | "record">>(
  items: T[],
  batchSize: number,
): Run<T>[] {
  const runs: Run<T>[] = [];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    if (streams(item)) runs.push({ kind: "stream", items: [item] });
    else if (!isPlainPrompt(item.request)) runs.push({ kind: "chat", items: [item] });
    else {
      const key = groupKey(item.request);
      groups.set(key, [...(groups.get(key) ?? []), item]);
    }
  }
  for (const group of groups.values()) {
    for (let i = 0; i < group.length; i += batchSize) {
      runs.push({ kind: "prompts", items: group.slice(i, i + batchSize) });
    }
  }
  return runs;
}
