import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { GPUS, MODELS } from "../../infra/catalogue.ts";
import {
  loadValuesFile,
  PROFILES,
  type Profile,
  parseValues,
  profilePath,
  type Values,
  valuesSchema,
} from "../../infra/config.ts";
import { synth } from "../../infra/main.ts";
import { print } from "../context.ts";
import { UsageError } from "../options.ts";

interface SynthOptions {
  config?: string;
  profile?: string;
  out: string;
  valuesSchema?: string;
}

/**
 * The values file's JSON Schema, from the zod schema synth validates with:
 * every field, its default and its description, unknown keys refused
 * (draft-07, what YAML editors read best). Rules
 * across fields (sizing, min ≤ max) are checked by synth only.
 *
 * @example
 * valuesJsonSchema().properties.modelServer.properties.model.enum // ["deepseek-r1-distill-qwen-1.5b", …]
 */
export function valuesJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(valuesSchema, { io: "input", unrepresentable: "any", target: "draft-7" }),
    title: "deepqueue values",
    description:
      "Values for `deepqueue synth --config`. Editors: `# yaml-language-server: $schema=values.schema.json` on the file's first line.",
  };
}

function values(options: SynthOptions): Values {
  if (options.config && options.profile) throw new UsageError("give --config or --profile, not both");
  if (options.profile) {
    if (!(PROFILES as readonly string[]).includes(options.profile)) {
      throw new UsageError(`--profile must be one of ${PROFILES.join(", ")}, got "${options.profile}"`);
    }
    return loadValuesFile(profilePath(options.profile as Profile));
  }
  return options.config ? loadValuesFile(options.config) : parseValues({});
}

/** One line per model server: what runs where. */
function describe(v: Values): string[] {
  const servers = [
    {
      role: "model",
      s: v.modelServer,
      replicas: `${v.modelServer.minReplicas}-${v.modelServer.maxReplicas}`,
    },
    ...(v.fallbackModelServer.enabled
      ? [{ role: "fallback", s: v.fallbackModelServer, replicas: String(v.fallbackModelServer.replicas) }]
      : []),
  ];
  return servers.map(
    ({ role, s, replicas }) =>
      `  ${role}: ${MODELS[s.model].huggingFaceId} in ${s.dtype} on ${s.tensorParallelSize} × ${s.gpu} (${GPUS[s.gpu].memoryGb} GB) per replica, ${replicas} replicas`,
  );
}

/** `deepqueue synth`: the Kubernetes manifests (docs/kubernetes.md) into dist/. */
export function registerSynth(program: Command): void {
  program
    .command("synth")
    .description("the Kubernetes manifests into dist/")
    .option("-c, --config <file>", "values file (YAML or JSON); see infra/profiles/ and docs/kubernetes.md")
    .option("-p, --profile <name>", `a shipped profile: ${PROFILES.join(", ")}`)
    .option("-o, --out <dir>", "output directory", "dist")
    .option(
      "--values-schema <file>",
      "write the values file's JSON Schema to <file> (- for stdout), for editors, and synthesize nothing",
    )
    .action((options: SynthOptions) => {
      if (options.valuesSchema) {
        const text = `${JSON.stringify(valuesJsonSchema(), null, 2)}\n`;
        if (options.valuesSchema === "-") process.stdout.write(text);
        else {
          writeFileSync(options.valuesSchema, text);
          print(`wrote ${options.valuesSchema}`);
        }
        return;
      }
      const v = values(options);
      const files = synth(v, options.out);
      print(`namespace ${v.namespace}, prefix ${v.prefix}`);
      for (const line of describe(v)) print(line);
      for (const file of files) print(`wrote ${file}`);
      print(`apply with: kubectl apply -f ${options.out}/`);
    });
}
