import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Simulator, startSimulator } from "../../local/sim/server.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { cacheDepsFromEnv } from "../cache/handler.ts";
import { batcherDepsFromEnv } from "./handler.ts";

// On Kubernetes the fallback model runs on its own Deployment (infra sets
// DEEPQUEUE_FALLBACK_INFERENCE_URL); its calls must go there, not to the main server.
describe("the fallback model's own server", () => {
  let stack: TestStack;
  let main: Simulator;
  let fallback: Simulator;
  beforeAll(async () => {
    stack = await startTestStack({ bootstrap: false });
    main = await startSimulator({ port: 0, timeScale: 0, servedModelNames: ["deepseek-chat"] });
    fallback = await startSimulator({ port: 0, timeScale: 0, servedModelNames: ["deepseek-chat-small"] });
  });
  afterAll(async () => {
    await Promise.all([main.stop(), fallback.stop()]);
    await stack.stop();
  });

  const env = () => ({
    ...stack.env,
    INFERENCE_URL: main.url,
    DEEPQUEUE_FALLBACK_MODEL: "deepseek-chat-small",
    DEEPQUEUE_FALLBACK_INFERENCE_URL: fallback.url,
  });

  it("the batcher's degradation level 2 and the cache's summaries call DEEPQUEUE_FALLBACK_INFERENCE_URL", async () => {
    const batcher = batcherDepsFromEnv(env());
    const answer = await batcher.fallbackInference!.chat({
      model: "deepseek-chat-small",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 4,
    });
    expect(answer.text.length).toBeGreaterThan(0);

    const cache = cacheDepsFromEnv(env());
    expect(await cache.summarize!([{ role: "user", content: "tell me about queues" }])).not.toBe("");

    expect(fallback.stats().chatCalls).toBe(2);
    expect(main.stats().requests).toBe(0);
  });

  it("without it, both use INFERENCE_URL (one server serving both models)", async () => {
    const shared = await startSimulator({ port: 0, timeScale: 0 });
    try {
      const { DEEPQUEUE_FALLBACK_INFERENCE_URL: _unused, ...rest } = { ...env(), INFERENCE_URL: shared.url };
      await batcherDepsFromEnv(rest).fallbackInference!.chat({
        model: "deepseek-chat-small",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
      });
      expect(shared.stats().chatCalls).toBe(1);
    } finally {
      await shared.stop();
    }
  });
});
