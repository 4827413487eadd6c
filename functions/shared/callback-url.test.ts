import { describe, expect, it } from "vitest";
import { checkCallbackUrl, isBlockedAddress, type Lookup } from "./callback-url.ts";
import { InvalidCallbackUrlError } from "./errors.ts";

const resolvesTo =
  (...addresses: string[]): Lookup =>
  async () =>
    addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

describe("callback URL checks", () => {
  it.each([
    "10.1.2.3",
    "172.20.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fd00::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    // IPv4 carried in IPv6, in every spelling.
    "::127.0.0.1",
    "::7f00:1",
    "::ffff:7f00:1",
    "::ffff:0:10.0.0.1",
    "::ffff:0:a9fe:a9fe",
    "64:ff9b::10.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:a00:1::",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
  ])("blocks %s", (address) => {
    expect(isBlockedAddress(address)).toBe(true);
  });

  it.each([
    "93.184.216.34",
    "8.8.8.8",
    "2606:4700::1111",
    "172.32.0.1",
    "64:ff9b::808:808", // NAT64 to 8.8.8.8
    "2002:808:808::1", // 6to4 from 8.8.8.8
  ])("allows public %s", (address) => {
    expect(isBlockedAddress(address)).toBe(false);
  });

  it("accepts https to a public address", async () => {
    await expect(
      checkCallbackUrl("https://hooks.example.com/x", {
        devMode: false,
        lookup: resolvesTo("93.184.216.34"),
      }),
    ).resolves.toBeUndefined();
  });

  it("refuses http outside dev mode", async () => {
    await expect(
      checkCallbackUrl("http://hooks.example.com/x", { devMode: false, lookup: resolvesTo("93.184.216.34") }),
    ).rejects.toThrow(/https/);
  });

  it("refuses a host when any of its addresses is private (DNS rebinding)", async () => {
    const error = await checkCallbackUrl("https://mixed.example.com/x", {
      devMode: false,
      lookup: resolvesTo("93.184.216.34", "10.0.0.5"),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidCallbackUrlError);
    expect((error as InvalidCallbackUrlError).code).toBe("invalid_callback_url");
  });

  it("refuses literal private and metadata addresses", async () => {
    await expect(checkCallbackUrl("https://169.254.169.254/latest", { devMode: false })).rejects.toThrow(
      /link-local/,
    );
    await expect(checkCallbackUrl("https://[::1]:8443/x", { devMode: false })).rejects.toThrow(/dev mode/);
    // The URL parser rewrites [::127.0.0.1] as [::7f00:1]: still loopback.
    await expect(checkCallbackUrl("https://[::127.0.0.1]/x", { devMode: false })).rejects.toThrow(/private/);
    await expect(checkCallbackUrl("https://[::ffff:169.254.169.254]/x", { devMode: false })).rejects.toThrow(
      /private/,
    );
    await expect(checkCallbackUrl("https://[2002:a9fe:a9fe::]/x", { devMode: false })).rejects.toThrow(
      /private/,
    );
    // Decimal and hex IPv4 spellings are normalised by the URL parser before the check.
    await expect(checkCallbackUrl("https://2130706433/x", { devMode: false })).rejects.toThrow(/private/);
    await expect(checkCallbackUrl("https://0xa9.254.169.254/x", { devMode: false })).rejects.toThrow(
      /private/,
    );
  });

  it("allows loopback, http or https, only in dev mode", async () => {
    await expect(checkCallbackUrl("http://127.0.0.1:9999/hook", { devMode: true })).resolves.toBeUndefined();
    await expect(
      checkCallbackUrl("http://localhost:9999/hook", {
        devMode: true,
        lookup: resolvesTo("127.0.0.1", "::1"),
      }),
    ).resolves.toBeUndefined();
    // Outside dev mode loopback is refused for what it is, over https too (not only for the scheme).
    await expect(checkCallbackUrl("https://127.0.0.1:9999/hook", { devMode: false })).rejects.toThrow(
      /loopback is allowed only in dev mode/,
    );
    // Dev mode never opens other private ranges, over https either.
    for (const url of ["https://10.0.0.1/hook", "https://192.168.1.10/hook", "https://169.254.169.254/x"]) {
      await expect(checkCallbackUrl(url, { devMode: true }), url).rejects.toThrow(/private/);
    }
    await expect(
      checkCallbackUrl("https://internal.example.com/hook", {
        devMode: true,
        lookup: resolvesTo("10.1.2.3"),
      }),
    ).rejects.toThrow(/private/);
  });

  it("refuses unresolvable hosts and credentials in the URL", async () => {
    const failing: Lookup = async () => {
      throw new Error("ENOTFOUND");
    };
    await expect(
      checkCallbackUrl("https://nowhere.invalid/x", { devMode: false, lookup: failing }),
    ).rejects.toThrow(/does not resolve/);
    await expect(
      checkCallbackUrl("https://user:pw@hooks.example.com/x", {
        devMode: false,
        lookup: resolvesTo("93.184.216.34"),
      }),
    ).rejects.toThrow(/credentials/);
  });
});
