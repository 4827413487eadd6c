import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startFauxqs } from "fauxqs";
import { afterAll, describe, expect, it } from "vitest";
import { withNormalSync } from "./sqlite-sync.ts";

const dir = mkdtempSync(join(tmpdir(), "deepqueue-sqlite-sync-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const synchronous = (db: DatabaseSync) =>
  (db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous;
const FULL = 2;
const NORMAL = 1;

describe("withNormalSync", () => {
  it("switches a WAL connection opened inside it to synchronous = NORMAL, and only while it runs", () => {
    const { value: inside, switched } = withNormalSync(() => {
      const db = new DatabaseSync(join(dir, "inside.db"));
      db.exec("PRAGMA journal_mode = WAL");
      return db;
    });
    const after = new DatabaseSync(join(dir, "after.db"));
    after.exec("PRAGMA journal_mode = WAL");
    expect(switched).toBe(1);
    expect(synchronous(inside)).toBe(NORMAL);
    expect(synchronous(after)).toBe(FULL);
    inside.close();
    after.close();
  });

  it("reaches the database fauxqs opens for a data folder (fauxqs still opens it that way)", async () => {
    const { value, switched } = withNormalSync(() =>
      startFauxqs({ port: 0, logger: false, dataDir: join(dir, "fauxqs") }),
    );
    const sqs = await value;
    await sqs.stop();
    expect(switched).toBe(1);
  });
});
