import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DeepqueueError } from "../functions/shared/errors.ts";
import { loadValuesFile, PROFILES, parseValues, profilePath, ValuesError, valuesSchema } from "./config.ts";
import { FUNCTION_WORKER_DEFAULTS, WORKER_DEFAULTS } from "./function-worker.ts";
import { INGEST_SERVICE_DEFAULTS } from "./ingest-service.ts";
import { MODEL_CACHE_DEFAULTS, MODEL_SERVER_DEFAULTS, VLLM_IMAGE } from "./model-server.ts";
import { MODEL_SERVER_SCALER_DEFAULTS } from "./model-server-scaler.ts";

function problems(input: unknown): readonly string[] {
  try {
    parseValues(input);
  } catch (error) {
    if (error instanceof ValuesError) return error.problems;
    throw error;
  }
  throw new Error("expected a ValuesError");
}

describe("values", () => {
  it("defaults to the default profile: 7B on one A100 80GB, 2 to 10 replicas", () => {
    const v = parseValues({});
    expect(v.prefix).toBe("deepqueue");
    expect(v.modelServer).toMatchObject({
      model: "deepseek-r1-distill-qwen-7b",
      gpu: "A100-80GB",
      tensorParallelSize: 1,
      dtype: "bfloat16",
      maxModelLen: 4096,
      minReplicas: 2,
      maxReplicas: 10,
    });
    expect(v.modelServer.scaling.ttftP95Seconds).toBe(0.5);
    expect(v.fallbackModelServer.enabled).toBe(false);
    expect(v.functions.batcher.queueLength).toBe(64);
  });

  it("documents every field", () => {
    // Every leaf of the JSON Schema export carries a description.
    const schema = z.toJSONSchema(valuesSchema, { io: "input" });
    const undocumented: string[] = [];
    let fields = 0;
    const walk = (node: Record<string, unknown>, path: string) => {
      const properties = node.properties as Record<string, Record<string, unknown>> | undefined;
      if (!properties) return;
      for (const [key, child] of Object.entries(properties)) {
        fields += 1;
        if (!child.description) undocumented.push(`${path}${key}`);
        walk(child, `${path}${key}.`);
      }
    };
    walk(schema as Record<string, unknown>, "");
    expect(fields).toBeGreaterThan(80);
    expect(undocumented).toEqual([]);
  });

  it("names the field and the allowed values of a bad enum", () => {
    const [p] = problems({ modelServer: { gpu: "A10G" } });
    expect(p).toContain("modelServer.gpu: must be one of");
    expect(p).toContain('"A100-80GB"');
    expect(p).toContain('(got "A10G")');
  });

  it("refuses unknown keys, so a typo fails loudly", () => {
    expect(problems({ functions: { cache: { queueLenght: 5 } } })).toEqual([
      'functions.cache: unknown key "queueLenght"',
    ]);
  });

  it("refuses a model that does not fit its GPUs, with what would", () => {
    const [p] = problems({
      modelServer: {
        model: "deepseek-llm-67b-chat",
        gpu: "A100-80GB",
        dtype: "float16",
        tensorParallelSize: 1,
      },
    });
    expect(p).toMatch(
      /^modelServer: deepseek-llm-67b-chat \(67B parameters\) in float16 does not fit 1 × A100-80GB/,
    );
    expect(p).toContain("Would fit: 2 × A100-80GB in float16 (tensorParallelSize: 2");
  });

  it("sizes the fallback model only when it is enabled", () => {
    const tooBig = { model: "deepseek-llm-67b-chat", gpu: "L4" } as const;
    expect(() => parseValues({ fallbackModelServer: tooBig })).not.toThrow();
    expect(problems({ fallbackModelServer: { ...tooBig, enabled: true } })[0]).toMatch(
      /^fallbackModelServer: /,
    );
  });

  it("refuses a fallback with a shorter context or the main model's name", () => {
    expect(
      problems({
        modelServer: { maxModelLen: 8192 },
        fallbackModelServer: { enabled: true, maxModelLen: 4096 },
      }),
    ).toEqual([
      "fallbackModelServer.maxModelLen: maxModelLen (4096) is below modelServer.maxModelLen (8192): requests the main model accepts would fail on the fallback",
    ]);
    expect(
      problems({ fallbackModelServer: { enabled: true, model: "deepseek-r1-distill-qwen-7b", gpu: "L40S" } }),
    ).toEqual([
      'fallbackModelServer.servedModelName: "deepseek-r1-distill-qwen-7b" is also the main model\'s name; the fallback needs its own (DEEPQUEUE_FALLBACK_MODEL)',
    ]);
  });

  it("refuses a cooldown shorter than a model load", () => {
    expect(problems({ modelServer: { modelLoadSeconds: 1200, scaling: { cooldownSeconds: 600 } } })).toEqual([
      "modelServer.scaling.cooldownSeconds: cooldownSeconds (600) must exceed modelLoadSeconds (1200), or a replica may be removed before it has served",
    ]);
  });

  it("refuses a ReadWriteOnce model cache shared by several replicas", () => {
    expect(problems({ modelServer: { cache: { accessMode: "ReadWriteOnce" } } })[0]).toMatch(
      /^modelServer\.cache\.accessMode: accessMode ReadWriteOnce cannot be shared by up to 10 replicas/,
    );
    expect(() =>
      parseValues({
        modelServer: { minReplicas: 1, maxReplicas: 1, cache: { accessMode: "ReadWriteOnce" } },
      }),
    ).not.toThrow();
  });

  it("refuses min above max", () => {
    expect(problems({ functions: { deliver: { minReplicas: 5, maxReplicas: 2 } } })).toEqual([
      "functions.deliver.minReplicas: minReplicas (5) exceeds maxReplicas (2)",
    ]);
  });

  it("refuses a schedule that is not a 5-field cron expression", () => {
    expect(problems({ reconciler: { schedule: "hourly" } })).toEqual([
      "reconciler.schedule: a cron expression of 5 fields (minute hour day month weekday)",
    ]);
  });

  it("reads YAML files and names the file in its errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "dq-values-"));
    const file = join(dir, "values.yaml");
    writeFileSync(file, "modelServer:\n  maxModelLen: 100\n");
    expect(() => loadValuesFile(file)).toThrow(`${file} is not valid:`);
    expect(() => loadValuesFile(join(dir, "missing.yaml"))).toThrow("cannot read it");
  });

  it.each(PROFILES)("parses the shipped %s profile", (profile) => {
    expect(() => loadValuesFile(profilePath(profile))).not.toThrow();
  });

  it("refuses a worker memory limit below its request, and ingest's scale and concurrency out of order", () => {
    expect(problems({ functions: { batcher: { memoryRequestMi: 900, memoryLimitMi: 800 } } })).toEqual([
      "functions.batcher.memoryLimitMi: memoryLimitMi (800) is below memoryRequestMi (900)",
    ]);
    expect(
      problems({
        functions: { ingest: { minScale: 5, maxScale: 2, containerConcurrency: 10, targetConcurrency: 20 } },
      }),
    ).toEqual([
      "functions.ingest.minScale: minScale (5) exceeds maxScale (2)",
      "functions.ingest.targetConcurrency: targetConcurrency (20) exceeds containerConcurrency (10)",
    ]);
    // containerConcurrency 0 is Knative's "unlimited": any target fits.
    expect(() =>
      parseValues({ functions: { ingest: { containerConcurrency: 0, targetConcurrency: 500 } } }),
    ).not.toThrow();
  });

  it("reports every broken check at once, each under its own key", () => {
    const found = problems({
      modelServer: { minReplicas: 4, maxReplicas: 3, modelLoadSeconds: 2000 },
      functions: { cache: { minReplicas: 3, maxReplicas: 1 } },
    });
    expect(found.map((p) => p.split(":")[0])).toEqual([
      "modelServer.minReplicas",
      "modelServer.scaling.cooldownSeconds",
      "functions.cache.minReplicas",
    ]);
  });

  it("throws a ValuesError, a DeepqueueError listing each problem", () => {
    const error = (() => {
      try {
        parseValues({ prefix: "Not A Prefix" });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValuesError);
    expect(error).toBeInstanceOf(DeepqueueError);
    expect((error as ValuesError).message).toMatch(/^values is not valid:\n {2}- prefix: /);
  });
});

describe("one source per default", () => {
  it("fills the values from the constructs' own defaults", () => {
    const v = parseValues({});
    const {
      component: _c,
      cache: _cache,
      replicas: _r,
      extraArgs,
      tolerations,
      ...server
    } = MODEL_SERVER_DEFAULTS;
    expect(v.modelServer).toMatchObject({
      ...server,
      extraArgs: [...extraArgs],
      tolerations: [...tolerations],
    });
    expect(v.modelServer.image).toBe(VLLM_IMAGE);
    expect(v.modelServer.cache).toMatchObject(MODEL_CACHE_DEFAULTS);
    const { minReplicas, maxReplicas, ...scaling } = MODEL_SERVER_SCALER_DEFAULTS;
    expect(v.modelServer).toMatchObject({ minReplicas, maxReplicas, scaling });
    const { imagePullPolicy: _pull, ...ingest } = INGEST_SERVICE_DEFAULTS;
    expect(v.functions.ingest).toMatchObject(ingest);
    for (const worker of Object.keys(WORKER_DEFAULTS) as (keyof typeof WORKER_DEFAULTS)[]) {
      const { tolerations: none, ...common } = FUNCTION_WORKER_DEFAULTS;
      expect(v.functions[worker]).toMatchObject({
        ...common,
        ...WORKER_DEFAULTS[worker],
        tolerations: [...none],
      });
    }
  });
});
