import type { HttpClient } from "./load.ts";

/** One `/v1/completions` call straight to the model server (through the recording proxy), as a direct client makes it. */
export interface DirectAnswer {
  ok: boolean;
  status: number;
  ms: number;
  startedAt: number;
  endedAt: number;
}

/** @example await directComplete(http, stack.modelUrl, { model: "deepseek-chat", prompt: "hi", maxTokens: 64 }); */
export async function directComplete(
  http: HttpClient,
  modelUrl: string,
  input: { model: string; prompt: string; maxTokens: number; temperature?: number; timeoutMs?: number },
): Promise<DirectAnswer> {
  const startedAt = Date.now();
  const answer = await http.request(`${modelUrl}/completions`, {
    method: "POST",
    body: JSON.stringify({
      model: input.model,
      prompt: input.prompt,
      max_tokens: input.maxTokens,
      temperature: input.temperature ?? 0.7,
    }),
    timeoutMs: input.timeoutMs ?? 120_000,
  });
  return { ok: answer.status === 200, status: answer.status, ms: answer.ms, startedAt, endedAt: Date.now() };
}

/** Calls the model server in [fromMs, toMs]: how busy it was kept, in sequences on average. */
export function modelOccupancy(
  calls: ReadonlyArray<{ start: number; end: number; prompts: string[]; status: number }>,
  fromMs: number,
  toMs: number,
): { calls: number; prompts: number; meanSequences: number; promptsPerCall: number } {
  const inWindow = calls.filter((c) => c.start >= fromMs && c.end <= toMs && c.status === 200);
  const prompts = inWindow.reduce((a, c) => a + Math.max(1, c.prompts.length), 0);
  const seqMs = inWindow.reduce((a, c) => a + Math.max(1, c.prompts.length) * (c.end - c.start), 0);
  const wall = Math.max(1, toMs - fromMs);
  return {
    calls: inWindow.length,
    prompts,
    meanSequences: seqMs / wall,
    promptsPerCall: inWindow.length ? prompts / inWindow.length : 0,
  };
}
