import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { App, YamlOutputType } from "cdk8s";
import { DeepqueueChart } from "./chart.ts";
import { loadValuesFile, parseValues, type Values } from "./config.ts";
import { validateManifests } from "./manifest-schemas.ts";

/** Id of the one chart; it names the output file (`<outdir>/deepqueue.k8s.yaml`). */
const CHART_ID = "deepqueue";

/**
 * Synthesizes every manifest for `values` into `outdir` and returns the files
 * written, after checking every object against its kind's schema. No network:
 * the schemas are bundled in node_modules.
 *
 * @example
 * synth(loadValuesFile("infra/profiles/large.yaml"), "dist"); // ["dist/deepqueue.k8s.yaml"]
 */
export function synth(values: Values, outdir: string): string[] {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const chart = new DeepqueueChart(app, CHART_ID, { values });
  validateManifests(chart.toJson());
  app.synth();
  return readdirSync(outdir)
    .filter((f) => f.endsWith(".k8s.yaml"))
    .map((f) => join(outdir, f));
}

// `cdk8s synth` (cdk8s.yaml: `app: npx tsx infra/main.ts`) runs this file; the
// CLI passes the output directory as CDK8S_OUTDIR and a values file may be
// named with DEEPQUEUE_VALUES. This is the entry point, so it reads the
// environment; everything else takes arguments.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const valuesPath = process.env.DEEPQUEUE_VALUES;
  const values = valuesPath ? loadValuesFile(valuesPath) : parseValues({});
  const files = synth(values, process.env.CDK8S_OUTDIR ?? "dist");
  process.stdout.write(`${files.join("\n")}\n`);
}
