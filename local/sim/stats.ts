import type { FailureType } from "./options.ts";

/** What the simulator records for tests (`GET /sim/stats`, `sim.stats()`). */
export interface SimCall {
  endpoint: "completions" | "chat";
  model: string;
  /** Prompts in the call: the length of a completions `prompt` array, 1 for chat. */
  prompts: number;
  stream: boolean;
  /** The HTTP status answered; 0 when the simulator dropped the connection, 499 when the client went away. */
  status: number;
}

export interface SimStats {
  /** Inference requests received (completions + chat), whatever their outcome. */
  requests: number;
  completionCalls: number;
  chatCalls: number;
  /** Prompts per `/v1/completions` call, in arrival order: a batcher's batches, as the model server sees them. */
  promptsPerCall: number[];
  /** The last `MAX_CALLS_KEPT` inference calls, oldest first. */
  calls: SimCall[];
  /** Calls answered 200. */
  succeeded: number;
  failuresInjected: Record<FailureType | "down", number>;
  /** 429s because the waiting queue was full. */
  queueFull: number;
  /** 400s for prompt + max_tokens beyond --max-model-len. */
  contextLengthErrors: number;
  /** Other 4xx (bad JSON, schema, unknown model). */
  invalidRequests: number;
  promptTokens: number;
  completionTokens: number;
  /** Peaks since the last reset. */
  maxRunning: number;
  maxWaiting: number;
}

const MAX_CALLS_KEPT = 10_000;

export function emptyStats(): SimStats {
  return {
    requests: 0,
    completionCalls: 0,
    chatCalls: 0,
    promptsPerCall: [],
    calls: [],
    succeeded: 0,
    failuresInjected: { rate_limit: 0, server_error: 0, unavailable: 0, timeout: 0, dropped: 0, down: 0 },
    queueFull: 0,
    contextLengthErrors: 0,
    invalidRequests: 0,
    promptTokens: 0,
    completionTokens: 0,
    maxRunning: 0,
    maxWaiting: 0,
  };
}

/** Counts a call that passed validation. */
export function recordCall(stats: SimStats, call: SimCall): void {
  if (call.endpoint === "completions") {
    stats.completionCalls += 1;
    stats.promptsPerCall.push(call.prompts);
  } else {
    stats.chatCalls += 1;
  }
  stats.calls.push(call);
  if (stats.calls.length > MAX_CALLS_KEPT) stats.calls.shift();
}
