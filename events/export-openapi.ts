import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { openApiDocument } from "./openapi.ts";

/** Where the committed OpenAPI document lives. */
export const OPENAPI_FILE = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "openapi.json");

/** The committed file's text: the document, two-space indented, with a final newline. */
export function openApiText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

/** Writes `docs/openapi.json`. */
export function writeOpenApi(file = OPENAPI_FILE): string {
  writeFileSync(file, openApiText());
  return file;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${writeOpenApi()}\n`);
}
