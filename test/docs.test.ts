import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DOCS = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

function anchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

/** Every `[text](target)` outside code blocks that is not a web address. */
function localLinks(file: string): string[] {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/i.test(t));
}

describe("README.md and docs/*.md", () => {
  it.each(DOCS)("%s links only to files (and headings) inside the repository", (doc) => {
    const file = join(ROOT, doc);
    for (const link of localLinks(file)) {
      const [path, anchor] = link.split("#") as [string, string | undefined];
      const target = path ? resolve(dirname(file), path) : file;
      expect(relative(ROOT, target).startsWith(".."), `${doc}: ${link} leaves the repository`).toBe(false);
      expect(existsSync(target), `${doc}: ${link} does not exist`).toBe(true);
      if (anchor && target.endsWith(".md")) {
        expect([...anchors(target)], `${doc}: ${link} names no heading`).toContain(anchor);
      }
    }
  });

  it.each(DOCS)("%s cites no document outside the repository", (doc) => {
    expect(readFileSync(join(ROOT, doc), "utf8")).not.toMatch(
      /\.\.\/shared|SPEC[.]md|SPEC[ ]§|SPEC[']s|steering[ ]repo/,
    );
  });
});

/** Every TypeScript source of the repository (not dependencies or build output). */
function sources(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (["node_modules", "build", "dist", ".git", ".deepqueue"].includes(name)) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(name) ? [path] : [];
  });
}

describe("code comments", () => {
  const files = sources();

  it("point at docs that exist, and at headings that exist in them", () => {
    expect(files.length).toBeGreaterThan(50);
    for (const file of files) {
      for (const [ref, path, anchor] of readFileSync(file, "utf8").matchAll(
        /\b(docs\/[\w.-]+\.md)(?:#([\w-]+))?/g,
      )) {
        const target = join(ROOT, path!);
        expect(existsSync(target), `${relative(ROOT, file)}: ${ref}`).toBe(true);
        if (anchor) expect([...anchors(target)], `${relative(ROOT, file)}: ${ref}`).toContain(anchor);
      }
    }
  });

  it("cite no document outside the repository", () => {
    for (const file of files) {
      // Spelled so that this file does not match itself.
      expect(readFileSync(file, "utf8"), relative(ROOT, file)).not.toMatch(
        /SPEC[ ]§|SPEC[']s|SPEC[.]md|steering[ ]repo/,
      );
    }
  });
});
