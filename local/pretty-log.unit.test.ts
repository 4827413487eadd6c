import { Writable } from "node:stream";
import { stripVTControlCharacters } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, useLogDestination } from "../functions/shared/logger.ts";
import { terminalLogDestination } from "./pretty-log.ts";

/** A stream that keeps what is written to it. */
function memory() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
}

describe("dev's terminal logs", () => {
  afterEach(() => useLogDestination(undefined));

  it("are JSON unless stdout is a terminal", async () => {
    expect(await terminalLogDestination({ isTTY: false })).toBeUndefined();
    expect(await terminalLogDestination({})).toBeUndefined();
  });

  it("on a terminal: one coloured line per entry, the function first, fields kept, secrets still redacted", async () => {
    const out = memory();
    const destination = await terminalLogDestination({ isTTY: true }, { destination: out.stream });
    useLogDestination(destination);
    const log = createLogger({ name: "dev" }).child({ function: "ingest" });
    log.info({ request_id: "req_1", tenant: "dev", api_key: "dq_secret" }, "request accepted");
    createLogger({ name: "batcher" }).warn({ attempt: 2 }, "model call failed");

    const lines = out.text().trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(stripVTControlCharacters(out.text())).not.toBe(out.text()); // coloured
    const [accepted, failed] = lines.map(stripVTControlCharacters);
    expect(accepted).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ingest +request accepted /);
    expect(accepted).toContain('"request_id":"req_1"');
    expect(accepted).toContain('"api_key":"[redacted]"');
    expect(accepted).not.toContain("dq_secret");
    expect(accepted).not.toContain("service");
    expect(failed).toMatch(/WARN: batcher +model call failed {"attempt":2}/);
  });

  it("a logger given its own destination keeps it (tests, the JSON path)", async () => {
    const pretty = memory();
    useLogDestination(await terminalLogDestination({ isTTY: true }, { destination: pretty.stream }));
    const json = memory();
    createLogger({ name: "ingest" }, json.stream).info({ n: 1 }, "hello");
    expect(JSON.parse(json.text())).toMatchObject({ level: "info", name: "ingest", msg: "hello", n: 1 });
    expect(pretty.text()).toBe("");
  });
});
