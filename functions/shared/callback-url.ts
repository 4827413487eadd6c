import { lookup as dnsLookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { InvalidCallbackUrlError } from "./errors.ts";

/**
 * Addresses a callback may never reach outside dev mode: private, loopback,
 * link-local (incl. the cloud metadata service 169.254.169.254), carrier-grade
 * NAT, multicast, reserved and unspecified ranges, for IPv4 and IPv6
 * (RFC 6890 special-purpose registries). IPv4-mapped IPv6 addresses are
 * checked as the IPv4 address they carry.
 */
const BLOCKED = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  BLOCKED.addSubnet(net, bits, "ipv4");
}
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96],
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const) {
  BLOCKED.addSubnet(net, bits, "ipv6");
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

export type Lookup = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

const defaultLookup: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

function normalize(address: string): { address: string; family: "ipv4" | "ipv6" } {
  const mapped = address.toLowerCase().match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  if (mapped?.[1]) return { address: mapped[1], family: "ipv4" };
  return { address, family: isIP(address) === 6 ? "ipv6" : "ipv4" };
}

/** True when `address` is one a callback may not reach (outside dev mode). */
export function isBlockedAddress(address: string): boolean {
  const { address: a, family } = normalize(address);
  return BLOCKED.check(a, family);
}

function isLoopback(address: string): boolean {
  const { address: a, family } = normalize(address);
  return LOOPBACK.check(a, family);
}

export interface CallbackUrlOptions {
  /** Dev mode allows http and https to loopback receivers (never other private ranges). */
  devMode: boolean;
  /** DNS resolution; injectable for tests. @default node:dns lookup with all addresses */
  lookup?: Lookup;
}

/**
 * Checks a callback URL at ingest and again at delivery (DNS can change in
 * between): https only, and every address the host resolves to must be
 * public. Throws InvalidCallbackUrlError saying why.
 *
 * @example await checkCallbackUrl("https://hooks.example.com/dq", { devMode: false });
 */
export async function checkCallbackUrl(url: string, options: CallbackUrlOptions): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidCallbackUrlError("callback_url is not a valid URL");
  }
  if (parsed.username || parsed.password) {
    throw new InvalidCallbackUrlError("callback_url must not carry credentials");
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await (options.lookup ?? defaultLookup)(host)).map((a) => a.address);
    } catch (error) {
      throw new InvalidCallbackUrlError(`callback_url host ${host} does not resolve`, { cause: error });
    }
    if (addresses.length === 0)
      throw new InvalidCallbackUrlError(`callback_url host ${host} does not resolve`);
  }
  const allLoopback = addresses.every(isLoopback);
  if (options.devMode && allLoopback && (parsed.protocol === "http:" || parsed.protocol === "https:")) return;
  if (parsed.protocol !== "https:") throw new InvalidCallbackUrlError("callback_url must use https");
  const blocked = addresses.find(isBlockedAddress);
  if (blocked) {
    throw new InvalidCallbackUrlError(
      `callback_url resolves to ${blocked}, a private, loopback or link-local address${allLoopback ? " (loopback is allowed only in dev mode)" : ""}`,
    );
  }
}
