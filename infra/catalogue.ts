/**
 * The model and GPU catalogue, and the arithmetic that decides whether a model
 * fits its GPUs. `synth` refuses a configuration that would only fail later,
 * at the first model load on a node that costs dollars an hour, and says what
 * would fit instead.
 *
 * Memory model (the same one vLLM applies at start-up): of each GPU's memory,
 * `gpuMemoryUtilization` is vLLM's to use. From that budget come the weights
 * (parameters × bytes per parameter, split across tensor-parallel ranks), a
 * fixed per-GPU overhead (CUDA context, activations, CUDA graphs) and the KV
 * cache, which must hold at least `kvCacheSequences` sequences of
 * `maxModelLen` tokens. vLLM itself refuses to start when the KV cache cannot
 * hold one such sequence; we ask for more, so a replica can batch.
 * GPU memory is taken at its nominal size in GB (10^9 bytes), which
 * under-counts slightly (an "80 GB" A100 has 80 GiB) and so errs safe.
 */

/** Bytes per weight for each dtype a model server can be given. */
export const DTYPES = {
  float16: { bytes: 2, doc: "FP16 weights and activations" },
  bfloat16: { bytes: 2, doc: "BF16 weights and activations (vLLM's default for DeepSeek checkpoints)" },
  fp8: { bytes: 1, doc: "FP8 weights (vLLM --quantization fp8, or the checkpoint's own FP8 for V3/R1)" },
} as const;
export type Dtype = keyof typeof DTYPES;

/** Attention layout, for the KV cache's size per token. */
type Attention =
  /** Grouped-query / multi-head attention: K and V per KV head. */
  | {
      readonly kind: "gqa";
      readonly layers: number;
      readonly heads: number;
      readonly kvHeads: number;
      readonly headDim: number;
    }
  /** DeepSeek's multi-head latent attention: one compressed latent (512) + RoPE key (64) per layer. */
  | { readonly kind: "mla"; readonly layers: number; readonly heads: number; readonly latentDim: number };

export interface ModelSpec {
  /** Hugging Face repository vLLM loads. */
  readonly huggingFaceId: string;
  /** The name clients send as `model` (vLLM `--served-model-name`). */
  readonly servedName: string;
  /** Total parameters, in billions (MoE: all experts, since all are resident). */
  readonly paramsBillion: number;
  /** Parameters active per token, in billions (MoE only). */
  readonly activeParamsBillion?: number;
  readonly attention: Attention;
  /** The checkpoint already ships FP8 weights (no `--quantization` flag needed). */
  readonly nativeFp8?: boolean;
  /** vLLM `--reasoning-parser`: R1's `<think>` text goes to `reasoning_content`, not `content`. */
  readonly reasoningParser?: "deepseek_r1";
  /** Flags vLLM's own recipe for this model adds. */
  readonly vllmArgs?: readonly string[];
  readonly doc: string;
}

/** DeepSeek-V3 and R1 share one architecture (R1 is V3 trained to reason), and so one vLLM recipe. */
const DEEPSEEK_V3_ARCHITECTURE = {
  paramsBillion: 671,
  activeParamsBillion: 37,
  attention: { kind: "mla", layers: 61, heads: 128, latentDim: 576 },
  nativeFp8: true,
  // vLLM's DeepSeek-V3/R1 recipe on 8 × H200: TP8 + expert parallelism.
  vllmArgs: ["--trust-remote-code", "--enable-expert-parallel"],
} as const;

/**
 * DeepSeek models deepqueue knows how to size. Architecture numbers are from
 * each checkpoint's `config.json` on Hugging Face.
 */
export const MODELS = {
  "deepseek-r1-distill-qwen-1.5b": {
    huggingFaceId: "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    servedName: "deepseek-r1-distill-qwen-1.5b",
    paramsBillion: 1.78,
    attention: { kind: "gqa", layers: 28, heads: 12, kvHeads: 2, headDim: 128 },
    reasoningParser: "deepseek_r1",
    doc: "R1 reasoning distilled into Qwen2.5-Math-1.5B; fits one L4",
  },
  "deepseek-r1-distill-qwen-7b": {
    huggingFaceId: "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    servedName: "deepseek-r1-distill-qwen-7b",
    paramsBillion: 7.62,
    attention: { kind: "gqa", layers: 28, heads: 28, kvHeads: 4, headDim: 128 },
    reasoningParser: "deepseek_r1",
    doc: "R1 reasoning distilled into Qwen2.5-Math-7B",
  },
  "deepseek-r1-distill-qwen-32b": {
    huggingFaceId: "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    servedName: "deepseek-r1-distill-qwen-32b",
    paramsBillion: 32.8,
    attention: { kind: "gqa", layers: 64, heads: 40, kvHeads: 8, headDim: 128 },
    reasoningParser: "deepseek_r1",
    doc: "R1 reasoning distilled into Qwen2.5-32B",
  },
  "deepseek-llm-7b-chat": {
    huggingFaceId: "deepseek-ai/deepseek-llm-7b-chat",
    servedName: "deepseek-llm-7b-chat",
    paramsBillion: 6.91,
    attention: { kind: "gqa", layers: 30, heads: 32, kvHeads: 32, headDim: 128 },
    doc: "DeepSeek LLM 7B chat (multi-head attention)",
  },
  "deepseek-llm-67b-chat": {
    huggingFaceId: "deepseek-ai/deepseek-llm-67b-chat",
    servedName: "deepseek-llm-67b-chat",
    paramsBillion: 67,
    attention: { kind: "gqa", layers: 95, heads: 64, kvHeads: 8, headDim: 128 },
    doc: "DeepSeek LLM 67B chat, the source design's model; needs tensor parallelism in 16-bit",
  },
  "deepseek-coder-v2-lite-instruct": {
    huggingFaceId: "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct",
    servedName: "deepseek-coder-v2-lite-instruct",
    paramsBillion: 15.7,
    activeParamsBillion: 2.4,
    attention: { kind: "mla", layers: 27, heads: 16, latentDim: 576 },
    doc: "DeepSeek-Coder-V2-Lite (MoE, 2.4B active) for code",
  },
  "deepseek-v3": {
    huggingFaceId: "deepseek-ai/DeepSeek-V3",
    servedName: "deepseek-v3",
    ...DEEPSEEK_V3_ARCHITECTURE,
    doc: "DeepSeek-V3 (MoE, 37B active), FP8 checkpoint; one node of 8 × H200",
  },
  "deepseek-r1": {
    huggingFaceId: "deepseek-ai/DeepSeek-R1",
    servedName: "deepseek-r1",
    ...DEEPSEEK_V3_ARCHITECTURE,
    reasoningParser: "deepseek_r1",
    doc: "DeepSeek-R1 (MoE, 37B active), FP8 checkpoint; one node of 8 × H200",
  },
} as const satisfies Record<string, ModelSpec>;
export type ModelId = keyof typeof MODELS;

export interface GpuSpec {
  /** Memory per GPU in GB. */
  readonly memoryGb: number;
  /** Values of the GPU feature discovery label `nvidia.com/gpu.product` for this GPU. */
  readonly productLabels: readonly string[];
  /** Hardware FP8 (Ada, Hopper); elsewhere vLLM falls back to weight-only FP8 kernels. */
  readonly fp8: boolean;
  readonly doc: string;
}

/** GPUs deepqueue schedules onto, with the labels the NVIDIA GPU operator puts on their nodes. */
export const GPUS = {
  L4: { memoryGb: 24, productLabels: ["NVIDIA-L4"], fp8: true, doc: "Ada, 24 GB (AWS g6)" },
  L40S: { memoryGb: 48, productLabels: ["NVIDIA-L40S"], fp8: true, doc: "Ada, 48 GB (AWS g6e)" },
  "A100-40GB": {
    memoryGb: 40,
    productLabels: ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"],
    fp8: false,
    doc: "Ampere, 40 GB (AWS p4d)",
  },
  "A100-80GB": {
    memoryGb: 80,
    productLabels: ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"],
    fp8: false,
    doc: "Ampere, 80 GB (AWS p4de), the source design's GPU",
  },
  H100: {
    memoryGb: 80,
    productLabels: ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"],
    fp8: true,
    doc: "Hopper, 80 GB (AWS p5)",
  },
  H200: { memoryGb: 141, productLabels: ["NVIDIA-H200"], fp8: true, doc: "Hopper, 141 GB (AWS p5e/p5en)" },
} as const satisfies Record<string, GpuSpec>;
export type GpuType = keyof typeof GPUS;

/** Tensor-parallel sizes vLLM runs within one node. */
const TENSOR_PARALLEL_SIZES = [1, 2, 4, 8] as const;

/** Per-GPU memory vLLM needs besides weights and KV cache (CUDA context, activations, CUDA graphs). */
const PER_GPU_OVERHEAD_GB = 1.5;

/** What sizing needs to know about one model server. */
export interface SizingRequest {
  readonly model: ModelId;
  readonly gpu: GpuType;
  readonly tensorParallelSize: number;
  readonly dtype: Dtype;
  readonly maxModelLen: number;
  readonly gpuMemoryUtilization: number;
  /** Full-length sequences the KV cache must hold at once. */
  readonly kvCacheSequences: number;
}

export interface SizingEstimate {
  readonly weightsGb: number;
  readonly kvCacheGb: number;
  readonly overheadGb: number;
  readonly requiredGb: number;
  readonly usableGb: number;
  /** Full-length sequences the KV cache left over could hold (0 when the weights do not fit). */
  readonly sequencesThatFit: number;
  readonly fits: boolean;
}

/** KV-cache bytes per token in 16-bit (vLLM keeps the KV cache in the activation dtype). */
export function kvBytesPerToken(model: ModelId): number {
  const a: Attention = MODELS[model].attention;
  const elements = a.kind === "mla" ? a.layers * a.latentDim : 2 * a.layers * a.kvHeads * a.headDim;
  return elements * 2;
}

/** Weights in GB at `dtype` (an FP8 checkpoint asked for in 16-bit is dequantized, so it doubles). */
export function weightsGb(model: ModelId, dtype: Dtype): number {
  return MODELS[model].paramsBillion * DTYPES[dtype].bytes;
}

/**
 * The memory arithmetic for one model server replica.
 *
 * @example
 * estimate({ model: "deepseek-llm-67b-chat", gpu: "A100-80GB", tensorParallelSize: 1, dtype: "float16",
 *            maxModelLen: 4096, gpuMemoryUtilization: 0.9, kvCacheSequences: 4 }).fits // false: 134 GB of weights
 */
export function estimate(req: SizingRequest): SizingEstimate {
  const weights = weightsGb(req.model, req.dtype);
  const perSequenceGb = (kvBytesPerToken(req.model) * req.maxModelLen) / 1e9;
  const kvCache = perSequenceGb * req.kvCacheSequences;
  const overhead = PER_GPU_OVERHEAD_GB * req.tensorParallelSize;
  const usable = GPUS[req.gpu].memoryGb * req.tensorParallelSize * req.gpuMemoryUtilization;
  const leftForKv = usable - weights - overhead;
  const sequencesThatFit = leftForKv > 0 ? Math.floor(leftForKv / perSequenceGb) : 0;
  return {
    weightsGb: weights,
    kvCacheGb: kvCache,
    overheadGb: overhead,
    requiredGb: weights + kvCache + overhead,
    usableGb: usable,
    sequencesThatFit,
    fits: sequencesThatFit >= req.kvCacheSequences,
  };
}

/** Why a tensor-parallel size cannot shard this model, or undefined when it can. */
export function tensorParallelProblem(model: ModelId, tensorParallelSize: number): string | undefined {
  if (!(TENSOR_PARALLEL_SIZES as readonly number[]).includes(tensorParallelSize)) {
    return `tensorParallelSize must be one of ${TENSOR_PARALLEL_SIZES.join(", ")} (one node), got ${tensorParallelSize}`;
  }
  const heads = MODELS[model].attention.heads;
  if (heads % tensorParallelSize !== 0) {
    return `tensorParallelSize ${tensorParallelSize} does not divide ${model}'s ${heads} attention heads (vLLM shards heads evenly)`;
  }
  return undefined;
}

/** A configuration that would fit, as a suggestion. */
export interface Suggestion {
  readonly gpu: GpuType;
  readonly tensorParallelSize: number;
  readonly dtype: Dtype;
  readonly sequencesThatFit: number;
}

/**
 * Configurations close to `req` that fit, best first: more GPUs of the same
 * type, then FP8 on the same GPUs, then the fewest GPUs of another type.
 */
export function suggestions(req: SizingRequest): Suggestion[] {
  const out: Suggestion[] = [];
  const tryFit = (gpu: GpuType, dtype: Dtype): Suggestion | undefined => {
    for (const tp of TENSOR_PARALLEL_SIZES) {
      if (tensorParallelProblem(req.model, tp)) continue;
      const e = estimate({ ...req, gpu, dtype, tensorParallelSize: tp });
      if (e.fits) return { gpu, tensorParallelSize: tp, dtype, sequencesThatFit: e.sequencesThatFit };
    }
    return undefined;
  };
  const add = (s: Suggestion | undefined) => {
    if (!s) return;
    const same = out.some(
      (o) => o.gpu === s.gpu && o.tensorParallelSize === s.tensorParallelSize && o.dtype === s.dtype,
    );
    if (!same) out.push(s);
  };
  const sameGpu = tryFit(req.gpu, req.dtype);
  add(sameGpu);
  if (req.dtype !== "fp8") {
    // FP8 is only worth suggesting when it saves GPUs.
    const fp8 = tryFit(req.gpu, "fp8");
    if (fp8 && (!sameGpu || fp8.tensorParallelSize < sameGpu.tensorParallelSize)) add(fp8);
  }
  const others = (Object.keys(GPUS) as GpuType[])
    .filter((g) => g !== req.gpu)
    .sort((a, b) => GPUS[a].memoryGb - GPUS[b].memoryGb);
  const maxGpus = Math.max(2, req.tensorParallelSize);
  for (const gpu of others) {
    const s = tryFit(gpu, req.dtype);
    if (s && s.tensorParallelSize <= maxGpus) add(s);
  }
  return out.slice(0, 4);
}

function describe(s: Suggestion): string {
  return `${s.tensorParallelSize} × ${s.gpu} in ${s.dtype} (tensorParallelSize: ${s.tensorParallelSize}, gpu: ${s.gpu}, dtype: ${s.dtype}; room for ${s.sequencesThatFit} sequences)`;
}

const gb = (n: number) => `${n.toFixed(1)} GB`;

/**
 * Undefined when `req` fits; otherwise a message that names the numbers and
 * what would fit.
 *
 * @example
 * sizingProblem({ model: "deepseek-llm-67b-chat", gpu: "A100-80GB", tensorParallelSize: 1, dtype: "float16",
 *                 maxModelLen: 4096, gpuMemoryUtilization: 0.9, kvCacheSequences: 4 })
 * // "deepseek-llm-67b-chat (67B parameters) in float16 does not fit 1 × A100-80GB: … Would fit: 2 × A100-80GB …"
 */
export function sizingProblem(req: SizingRequest): string | undefined {
  const tpProblem = tensorParallelProblem(req.model, req.tensorParallelSize);
  if (tpProblem) return tpProblem;
  const e = estimate(req);
  if (e.fits) return undefined;
  const m = MODELS[req.model];
  const need =
    e.weightsGb + e.overheadGb > e.usableGb
      ? `its weights alone are ${gb(e.weightsGb)} (${m.paramsBillion}B × ${DTYPES[req.dtype].bytes} bytes)`
      : `after ${gb(e.weightsGb)} of weights the KV cache holds ${e.sequencesThatFit} of the ${req.kvCacheSequences} sequences of ${req.maxModelLen} tokens asked for (kvCacheSequences)`;
  const fits = suggestions(req);
  const hint =
    fits.length > 0
      ? ` Would fit: ${fits.map(describe).join("; ")}.`
      : " Nothing in the catalogue fits on one node; lower maxModelLen or kvCacheSequences.";
  return (
    `${req.model} (${m.paramsBillion}B parameters) in ${req.dtype} does not fit ${req.tensorParallelSize} × ${req.gpu}: ` +
    `${need}, and ${req.tensorParallelSize} × ${GPUS[req.gpu].memoryGb} GB at gpuMemoryUtilization ${req.gpuMemoryUtilization} gives ${gb(e.usableGb)} ` +
    `(needs ≈ ${gb(e.requiredGb)} with ${gb(e.overheadGb)} overhead and ${gb(e.kvCacheGb)} KV cache).${hint}`
  );
}

/**
 * The sizing table of docs/kubernetes.md: fewest GPUs per replica for each
 * model and GPU at 4096 tokens, utilization 0.9 and 4 sequences (BF16 / FP8
 * where they differ). A test keeps the doc in step with the catalogue.
 *
 * @example
 * console.log(sizingTable());
 */
export function sizingTable(): string {
  const gpus = Object.keys(GPUS) as GpuType[];
  const fewest = (model: ModelId, gpu: GpuType, dtype: Dtype) =>
    TENSOR_PARALLEL_SIZES.find(
      (tp) =>
        !tensorParallelProblem(model, tp) &&
        estimate({
          model,
          gpu,
          dtype,
          tensorParallelSize: tp,
          maxModelLen: 4096,
          gpuMemoryUtilization: 0.9,
          kvCacheSequences: 4,
        }).fits,
    );
  const rows = (Object.keys(MODELS) as ModelId[]).map((model) => {
    const m: ModelSpec = MODELS[model];
    const cells = gpus.map((gpu) => {
      if (m.nativeFp8) {
        const tp = fewest(model, gpu, "fp8");
        return tp ? `${tp} (FP8 checkpoint)` : "—";
      }
      const bf16 = fewest(model, gpu, "bfloat16");
      const fp8 = fewest(model, gpu, "fp8");
      if (!bf16 && !fp8) return "—";
      if (bf16 === fp8) return String(bf16);
      return [bf16 ? String(bf16) : "—", `${fp8} (fp8)`].join(" / ");
    });
    const params = `${m.paramsBillion}B${m.activeParamsBillion ? ` (${m.activeParamsBillion}B active)` : ""}`;
    return `| \`${model}\` | ${params} | ${cells.join(" | ")} |`;
  });
  const header = `| model | params | ${gpus.map((g) => `${g} (${GPUS[g].memoryGb} GB)`).join(" | ")} |`;
  return [header, `|---|---|${gpus.map(() => "---").join("|")}|`, ...rows].join("\n");
}
