import { readFileSync } from "node:fs";
import { cpus, freemem, loadavg, platform, release, totalmem } from "node:os";

/** The machine a run measured on: recorded with every result, since numbers only compare within one run. */
export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  freeMemoryGiB: number;
  /** 1-minute load average when the run started: others' work on a shared machine shows here. */
  loadAverage1m: number;
  node: string;
  platform: string;
  kernel: string;
  /** cgroup CPU limit (cores), when the container has one. */
  cpuLimit?: number;
}

const GIB = 1024 ** 3;

/** @example const machine = machineInfo(); // { cores: 2, cpuModel: "…", node: "v24…" } */
export function machineInfo(): MachineInfo {
  const list = cpus();
  const limit = cgroupCpuLimit();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    memoryGiB: Number((totalmem() / GIB).toFixed(1)),
    freeMemoryGiB: Number((freemem() / GIB).toFixed(1)),
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    node: process.version,
    platform: platform(),
    kernel: release(),
    ...(limit ? { cpuLimit: limit } : {}),
  };
}

/** cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>"). */
function cgroupCpuLimit(): number | undefined {
  try {
    const [quota, period] = readFileSync("/sys/fs/cgroup/cpu.max", "utf8").trim().split(/\s+/);
    if (!quota || quota === "max" || !period) return undefined;
    return Number((Number(quota) / Number(period)).toFixed(2));
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in MiB, from /proc (Linux); undefined when it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
