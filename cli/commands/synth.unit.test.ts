import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { PROFILES, profilePath } from "../../infra/config.ts";
import { registerSynth, valuesJsonSchema } from "./synth.ts";

function program(): Command {
  const p = new Command().exitOverride();
  registerSynth(p);
  p.commands[0]?.exitOverride().configureOutput({ writeErr: () => {} });
  return p;
}

describe("deepqueue synth", () => {
  afterEach(() => vi.restoreAllMocks());

  it("writes a profile's manifests where --out says and tells how to apply them", async () => {
    const out = mkdtempSync(join(tmpdir(), "dq-synth-cli-"));
    const lines: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    await program().parseAsync(["node", "deepqueue", "synth", "--profile", "large", "--out", out]);
    const text = lines.join("");
    expect(text).toContain("deepseek-ai/deepseek-llm-67b-chat in bfloat16 on 2 × A100-80GB");
    expect(text).toContain(`kubectl apply -f ${out}/`);
    const docs = parseAllDocuments(readFileSync(join(out, "deepqueue.k8s.yaml"), "utf8")).map((d) =>
      d.toJS(),
    );
    const model = docs.find((d) => d.kind === "Deployment" && d.metadata.name === "deepqueue-model");
    expect(model.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"]).toBe(2);
  });

  it("refuses a values file with the file, the field and what would fit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dq-synth-cli-"));
    const file = join(dir, "values.yaml");
    writeFileSync(
      file,
      "modelServer:\n  model: deepseek-llm-67b-chat\n  gpu: A100-80GB\n  dtype: float16\n  tensorParallelSize: 1\n",
    );
    await expect(
      program().parseAsync(["node", "deepqueue", "synth", "--config", file, "--out", join(dir, "dist")]),
    ).rejects.toThrow(/values\.yaml is not valid:\n {2}- modelServer: .*Would fit: 2 × A100-80GB/);
  });

  it("refuses an unknown profile, naming the known ones", async () => {
    await expect(program().parseAsync(["node", "deepqueue", "synth", "--profile", "huge"])).rejects.toThrow(
      '--profile must be one of dev-small, default, large, frontier, got "huge"',
    );
  });

  it("--values-schema writes a JSON Schema that accepts every profile and refuses a typo", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dq-synth-cli-"));
    const file = join(dir, "values.schema.json");
    vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    await program().parseAsync([
      "node",
      "deepqueue",
      "synth",
      "--values-schema",
      file,
      "--out",
      join(dir, "dist"),
    ]);
    const schema = JSON.parse(readFileSync(file, "utf8"));
    expect(schema.$schema).toContain("json-schema.org");
    expect(schema.properties.modelServer.properties.model.description).toContain("catalogue id");
    // Formats (uri, cidr) are hints here; the test is about fields, types and enums.
    const validate = new Ajv({ strict: false, validateFormats: false }).compile(schema);
    for (const profile of PROFILES) {
      const values = parseYaml(readFileSync(profilePath(profile), "utf8"));
      expect(validate(values), `${profile}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(validate({ functions: { cache: { queueLenght: 5 } } })).toBe(false);
    expect(validate({ modelServer: { gpu: "A10G" } })).toBe(false);
    // Nothing synthesized.
    expect(() => readFileSync(join(dir, "dist", "deepqueue.k8s.yaml"))).toThrow();
  });

  it("infra/profiles/values.schema.json is current (regenerate: npm run synth -- --values-schema infra/profiles/values.schema.json)", () => {
    const committed = JSON.parse(
      readFileSync(new URL("../../infra/profiles/values.schema.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(valuesJsonSchema());
  });
});
