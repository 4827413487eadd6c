import { vi } from "vitest";
import { buildProgram } from "../../cli/index.ts";

/**
 * Runs `deepqueue <args>` in this process with `env` as the environment,
 * capturing what it prints.
 *
 * @example const { stdout } = await runCli(["keys", "list", "--json"], stack.env);
 */
export async function runCli(args: string[], env: Record<string, string>): Promise<{ stdout: string }> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let stdout = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  try {
    await (await buildProgram(["node", "deepqueue", ...args]))
      .exitOverride()
      .parseAsync(["node", "deepqueue", ...args]);
    return { stdout };
  } finally {
    spy.mockRestore();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}
