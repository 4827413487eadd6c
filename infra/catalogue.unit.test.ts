import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  estimate,
  GPUS,
  kvBytesPerToken,
  MODELS,
  type SizingRequest,
  sizingProblem,
  sizingTable,
  suggestions,
  tensorParallelProblem,
} from "./catalogue.ts";

const base = { maxModelLen: 4096, gpuMemoryUtilization: 0.9, kvCacheSequences: 4 } as const;

describe("catalogue", () => {
  it("lists the DeepSeek models the issue names, with parameter counts", () => {
    expect(Object.keys(MODELS)).toEqual(
      expect.arrayContaining([
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
        "deepseek-r1-distill-qwen-32b",
        "deepseek-llm-7b-chat",
        "deepseek-llm-67b-chat",
        "deepseek-coder-v2-lite-instruct",
        "deepseek-v3",
        "deepseek-r1",
      ]),
    );
    expect(MODELS["deepseek-llm-67b-chat"].paramsBillion).toBe(67);
    expect(MODELS["deepseek-r1"].paramsBillion).toBe(671);
  });

  it("lists the GPUs with their memory", () => {
    expect(Object.fromEntries(Object.entries(GPUS).map(([k, g]) => [k, g.memoryGb]))).toEqual({
      L4: 24,
      L40S: 48,
      "A100-40GB": 40,
      "A100-80GB": 80,
      H100: 80,
      H200: 141,
    });
  });

  it("sizes the KV cache per token from the attention layout", () => {
    // 67B: 95 layers × 8 KV heads × 128 dims × (K and V) × 2 bytes.
    expect(kvBytesPerToken("deepseek-llm-67b-chat")).toBe(95 * 8 * 128 * 2 * 2);
    // V3: multi-head latent attention, 576 values per layer.
    expect(kvBytesPerToken("deepseek-v3")).toBe(61 * 576 * 2);
  });
});

describe("sizing", () => {
  const sixtySevenOnOneA100: SizingRequest = {
    ...base,
    model: "deepseek-llm-67b-chat",
    gpu: "A100-80GB",
    tensorParallelSize: 1,
    dtype: "float16",
  };

  it("refuses 67B in FP16 on one A100 80GB: 134 GB of weights", () => {
    const e = estimate(sixtySevenOnOneA100);
    expect(e.weightsGb).toBe(134);
    expect(e.fits).toBe(false);
    const message = sizingProblem(sixtySevenOnOneA100);
    expect(message).toContain("does not fit 1 × A100-80GB");
    expect(message).toContain("134.0 GB");
  });

  it("suggests tensor parallelism 2 first, then other GPUs that fit", () => {
    const fits = suggestions(sixtySevenOnOneA100);
    expect(fits[0]).toMatchObject({ gpu: "A100-80GB", tensorParallelSize: 2, dtype: "float16" });
    for (const s of fits) expect(estimate({ ...sixtySevenOnOneA100, ...s }).fits).toBe(true);
    expect(sizingProblem(sixtySevenOnOneA100)).toContain("tensorParallelSize: 2, gpu: A100-80GB");
  });

  it("accepts every shipped profile's model server", () => {
    const ok: SizingRequest[] = [
      {
        ...base,
        model: "deepseek-r1-distill-qwen-1.5b",
        gpu: "L4",
        tensorParallelSize: 1,
        dtype: "bfloat16",
      },
      {
        ...base,
        model: "deepseek-r1-distill-qwen-7b",
        gpu: "A100-80GB",
        tensorParallelSize: 1,
        dtype: "bfloat16",
      },
      { ...base, model: "deepseek-llm-67b-chat", gpu: "A100-80GB", tensorParallelSize: 2, dtype: "bfloat16" },
      { ...base, model: "deepseek-r1", gpu: "H200", tensorParallelSize: 8, dtype: "fp8", maxModelLen: 32768 },
    ];
    for (const req of ok) expect(sizingProblem(req), req.model).toBeUndefined();
  });

  it("refuses V3 on 8 × H100 (671 GB of FP8 weights) and points at H200", () => {
    const req: SizingRequest = {
      ...base,
      model: "deepseek-v3",
      gpu: "H100",
      tensorParallelSize: 8,
      dtype: "fp8",
    };
    const message = sizingProblem(req);
    expect(message).toContain("671.0 GB");
    expect(message).toContain("8 × H200");
  });

  it("refuses a context the KV cache cannot hold even when the weights fit", () => {
    // 67B over 2 × A100 80 GB leaves ~7 GB: 4 sequences of 4096 tokens, not 4 of 32k.
    const req: SizingRequest = {
      ...base,
      model: "deepseek-llm-67b-chat",
      gpu: "A100-80GB",
      tensorParallelSize: 2,
      dtype: "bfloat16",
      maxModelLen: 32768,
    };
    expect(sizingProblem(req)).toContain("KV cache holds 0 of the 4 sequences of 32768 tokens");
  });

  it("refuses a tensor-parallel size that does not divide the attention heads", () => {
    expect(tensorParallelProblem("deepseek-r1-distill-qwen-7b", 8)).toContain("28 attention heads");
    expect(tensorParallelProblem("deepseek-r1-distill-qwen-7b", 3)).toContain("one of 1, 2, 4, 8");
    expect(tensorParallelProblem("deepseek-llm-67b-chat", 8)).toBeUndefined();
  });
});

describe("docs/kubernetes.md", () => {
  it("carries the sizing table the catalogue computes", () => {
    // The formatter pads markdown tables; compare cell by cell.
    const normalize = (text: string) => text.replace(/[ \t]*\|[ \t]*/g, "|").replace(/-{3,}/g, "---");
    const doc = readFileSync(new URL("../docs/kubernetes.md", import.meta.url), "utf8");
    expect(normalize(doc)).toContain(normalize(sizingTable()));
  });
});
