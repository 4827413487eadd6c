import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The functions' image installs `dependencies` only (npm ci --omit=dev). Every
 * package the `deepqueue` command loads when it starts must be one of them;
 * dev-only packages (the emulators, the bench's load generator) may only be
 * loaded lazily, by the commands that need them.
 */
const ROOT = resolve(import.meta.dirname, "..");
const pkg = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Specifiers of a file's static, value-level imports and re-exports (not `import type`, not `import()`). */
function staticImports(source: string): string[] {
  const out: string[] = [];
  const pattern = /^(?:import|export)\s+(?!type\s)(?:[^;]*?\s+from\s+)?"([^"]+)";/gms;
  for (const match of source.matchAll(pattern)) if (match[1]) out.push(match[1]);
  return out;
}

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] as string);
}

/**
 * The command modules cli/commands/index.ts loads on demand (`import("./dev.ts")`, …): each is
 * what a `deepqueue <command>` process loads at start, beside cli/index.ts.
 */
function commandModules(): string[] {
  const table = readFileSync(resolve(ROOT, "cli/commands/index.ts"), "utf8");
  return [...table.matchAll(/import\("(\.\/[^"]+\.ts)"\)/g)].map((m) => `cli/commands/${m[1]!.slice(2)}`);
}

/** Every bare package reachable through static imports from `entries`. */
function packagesLoadedAtStart(...entries: string[]): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const pending = entries.map((entry) => resolve(ROOT, entry));
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of staticImports(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) {
        if (spec.endsWith(".ts")) pending.push(resolve(dirname(file), spec));
      } else if (!spec.startsWith("node:") && !builtinModules.includes(spec)) {
        const name = packageName(spec);
        if (!packages.has(name)) packages.set(name, file.slice(ROOT.length + 1));
      }
    }
  }
  return packages;
}

describe("the functions' image", () => {
  it("has every package the deepqueue command loads at start among the dependencies", () => {
    expect(commandModules().length).toBeGreaterThan(10);
    const loaded = packagesLoadedAtStart("cli/index.ts", ...commandModules());
    expect(loaded.size).toBeGreaterThan(5);
    const missing = [...loaded]
      .filter(([name]) => !(name in pkg.dependencies))
      .map(([n, f]) => `${n} (${f})`);
    expect(missing).toEqual([]);
  });

  it("leaves the emulators and the load generator to devDependencies, loaded lazily", () => {
    expect(commandModules().length).toBeGreaterThan(10);
    const loaded = packagesLoadedAtStart("cli/index.ts", ...commandModules());
    for (const name of ["fauxqs", "dynalite", "autocannon"]) {
      expect(pkg.dependencies[name], name).toBeUndefined();
      expect(pkg.devDependencies[name], name).toBeDefined();
      expect(loaded.has(name), name).toBe(false);
    }
  });

  it("finds static imports and skips type-only ones", () => {
    expect(
      staticImports(
        'import a from "a";\nimport type { B } from "b";\nimport {\n  c,\n} from "@c/d/e";\nexport { f } from "./f.ts";\nimport "side";\nconst g = await import("g");',
      ),
    ).toEqual(["a", "@c/d/e", "./f.ts", "side"]);
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(resolve(ROOT, "Dockerfile"), "utf8");

  it("pins the base image by digest", () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-slim@sha256:[a-f0-9]{64}$/m);
    for (const from of dockerfile.match(/^FROM .+$/gm) ?? []) expect(from).toMatch(/^FROM \$\{NODE_IMAGE\}/);
  });

  it("installs production dependencies only in the runtime stage, with install scripts off", () => {
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    expect(runtime).toContain("npm ci --omit=dev --ignore-scripts");
    expect(runtime).not.toMatch(/COPY --from=build \/app\/node_modules/);
    // --ignore-scripts is safe: no production dependency has an install script the image needs.
    // protobufjs (the OpenTelemetry exporters) has a postinstall that only prints a version hint;
    // package.json's allowScripts declines it too.
    const notNeeded = new Set(["node_modules/protobufjs"]);
    const lock = JSON.parse(readFileSync(resolve(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([name, p]) => p.hasInstallScript && !p.dev && !notNeeded.has(name))
      .map(([name]) => name);
    expect(scripted).toEqual([]);
  });
});
