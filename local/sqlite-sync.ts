import { DatabaseSync } from "node:sqlite";

/**
 * Runs `start` with every SQLite connection that it opens in WAL mode switched to
 * `synchronous = NORMAL`; returns what `start` returned and how many connections were switched.
 *
 * fauxqs persists `npm start`'s queues in SQLite (node:sqlite) in WAL mode and leaves
 * `synchronous` at its default, FULL: an fsync on every commit, and every message sent, received
 * or deleted is a commit of its own, on the emulator's only thread. NORMAL is SQLite's documented
 * pairing for WAL (https://sqlite.org/pragma.html#pragma_synchronous): no corruption, and nothing
 * lost when a process dies; only a power cut or an OS crash may lose the last commits — for a
 * development emulator's data folder, the right trade. fauxqs has no option for it, and the
 * setting belongs to the connection, so it is made as fauxqs opens its database: the hook is in
 * place only while `start` runs synchronously (fauxqs opens the database before its first await).
 *
 * @example const { value: sqs, switched } = withNormalSync(() => startFauxqs({ dataDir }));
 */
export function withNormalSync<T>(start: () => T): { value: T; switched: number } {
  const exec = DatabaseSync.prototype.exec;
  let switched = 0;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    const result = exec.call(this, sql);
    if (/^\s*PRAGMA\s+journal_mode\s*=\s*WAL\b/i.test(sql)) {
      exec.call(this, "PRAGMA synchronous = NORMAL");
      switched += 1;
    }
    return result;
  };
  try {
    const value = start();
    return { value, switched };
  } finally {
    DatabaseSync.prototype.exec = exec;
  }
}
