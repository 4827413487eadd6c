import type { SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { OptionsError } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";
import { ReplyQueue } from "./reply-queue.ts";

const base = { sqs: {} as SQSClient, prefix: "deepqueue", logger: createLogger({ level: "silent" }) };

describe("ReplyQueue options", () => {
  it("names its queue <prefix>-reply-<replica>, a random replica id by default", () => {
    expect(new ReplyQueue({ ...base, replicaId: "r1" }).name).toBe("deepqueue-reply-r1");
    expect(new ReplyQueue(base).name).toMatch(/^deepqueue-reply-[0-9a-f]{12}$/);
  });

  it.each([
    [{ retentionSeconds: 30 }, "retentionSeconds"],
    [{ waitTimeSeconds: 21 }, "waitTimeSeconds"],
    [{ heartbeatMs: 0 }, "heartbeatMs"],
  ])("refuses %j with an OptionsError naming %s", (options, name) => {
    const error = (() => {
      try {
        new ReplyQueue({ ...base, ...options });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(OptionsError);
    expect((error as OptionsError).options).toEqual([name]);
  });
});
