import { lookup as dnsLookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { InvalidCallbackUrlError } from "./errors.ts";

/**
 * Addresses a callback may never reach outside dev mode: private, loopback,
 * link-local (incl. the cloud metadata service 169.254.169.254), carrier-grade
 * NAT, multicast, reserved and unspecified ranges, for IPv4 and IPv6
 * (RFC 6890 special-purpose registries). An IPv6 address that carries an IPv4
 * address — IPv4-compatible `::a.b.c.d`, IPv4-mapped `::ffff:a.b.c.d`,
 * IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765), NAT64 `64:ff9b::/96`
 * (RFC 6052), 6to4 `2002::/16` (RFC 3056), Teredo `2001::/32` (RFC 4380) — is
 * checked as the IPv4 address(es) it carries, whichever way it is written
 * (`[::127.0.0.1]` and `[::7f00:1]` alike).
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
  // NAT64 local-use prefix (RFC 8215): whatever it translates to is local.
  ["64:ff9b:1::", 48],
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

const v4 = (b: number[], at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/**
 * The IPv4 addresses an IPv6 address carries (empty when it carries none).
 *
 * @example embeddedIpv4("::7f00:1"); // ["127.0.0.1"]
 * @example embeddedIpv4("2002:a00:1::"); // ["10.0.0.1"] (6to4)
 */
function embeddedIpv4(address: string): string[] {
  if (!ipaddr.IPv6.isValid(address)) return [];
  const b = ipaddr.IPv6.parse(address).toByteArray();
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const word = (at: number) => (b[at]! << 8) | b[at + 1]!;
  // ::a.b.c.d (IPv4-compatible, deprecated), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated).
  if (zeros(0, 10) && (word(10) === 0 || word(10) === 0xffff)) {
    return word(10) === 0 && zeros(10, 15) ? [] : [v4(b, 12)]; // :: and ::1 are not IPv4
  }
  if (zeros(0, 8) && word(8) === 0xffff && word(10) === 0) return [v4(b, 12)];
  // NAT64 well-known prefix 64:ff9b::/96.
  if (word(0) === 0x64 && word(2) === 0xff9b && zeros(4, 12)) return [v4(b, 12)];
  // 6to4: 2002:AABB:CCDD::/48.
  if (word(0) === 0x2002) return [v4(b, 2)];
  // Teredo 2001:0000::/32: the server at bits 32-63, the client obfuscated (XOR) in the last 32 bits.
  if (word(0) === 0x2001 && word(2) === 0) {
    const client = b.slice(12, 16).map((x) => x ^ 0xff);
    return [v4(b, 4), v4(client, 0)];
  }
  return [];
}

/** Every (address, family) `address` stands for: itself and any IPv4 it carries. */
function forms(address: string): Array<{ address: string; family: "ipv4" | "ipv6" }> {
  if (isIP(address) !== 6) return [{ address, family: "ipv4" }];
  return [
    { address, family: "ipv6" },
    ...embeddedIpv4(address).map((a) => ({ address: a, family: "ipv4" as const })),
  ];
}

/** True when `address` is one a callback may not reach (outside dev mode). */
export function isBlockedAddress(address: string): boolean {
  return forms(address).some(({ address: a, family }) => BLOCKED.check(a, family));
}

/** Loopback in every form it is written: dev mode's only exception. */
function isLoopback(address: string): boolean {
  const all = forms(address);
  return (
    all.some(({ address: a, family }) => LOOPBACK.check(a, family)) &&
    !all.some(({ address: a, family }) => BLOCKED.check(a, family) && !LOOPBACK.check(a, family))
  );
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
