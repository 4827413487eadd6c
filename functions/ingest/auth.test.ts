import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { type IngestServer, json, makeTenant, post, startIngestServer } from "../../test/helpers/ingest.ts";
import { provisionTenant } from "../shared/provision.ts";
import { secretBoxFromEnv } from "../shared/secret-box.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";

describe("ingest authentication over HTTP", () => {
  let stack: TestStack;
  let server: IngestServer;
  let jwks: Server;
  let signer: CryptoKey;
  let stranger: CryptoKey;
  let signed: { api_key: string; webhook_secret: string };
  let plain: { api_key: string; webhook_secret: string };
  let jwksUrl: string;

  beforeAll(async () => {
    stack = await startTestStack();
    const pair = await generateKeyPair("ES256");
    signer = pair.privateKey;
    stranger = (await generateKeyPair("ES256")).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    // The issuer's JWKS endpoint: a tiny local server.
    jwks = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    server = await startIngestServer(stack, {
      DEEPQUEUE_JWKS_URL: jwksUrl,
      DEEPQUEUE_JWT_ISSUER: "https://id.example.com/",
      DEEPQUEUE_JWT_AUDIENCE: "deepqueue",
    });
    signed = await makeTenant(stack, "signed");
    await new DynamoTenantStore(stack.ddb, stack.prefix).update("signed", { require_signatures: true });
    plain = await makeTenant(stack, "plain");
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await new Promise((resolve) => jwks?.close(resolve));
    await stack?.stop();
  });

  const jwt = (
    claims: Record<string, unknown>,
    options: {
      key?: CryptoKey;
      expires?: string | number | null;
      issuer?: string | null;
      audience?: string | null;
      issuedAt?: number | null;
    } = {},
  ) => {
    let token = new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "k1" });
    if (options.issuer !== null) token = token.setIssuer(options.issuer ?? "https://id.example.com/");
    if (options.audience !== null) token = token.setAudience(options.audience ?? "deepqueue");
    if (options.issuedAt !== null) token = token.setIssuedAt(options.issuedAt ?? undefined);
    if (options.expires !== null) token = token.setExpirationTime(options.expires ?? "5m");
    return token.sign(options.key ?? signer);
  };
  const now = () => Math.floor(Date.now() / 1000);

  const expect401 = async (res: Response) => {
    expect(res.status).toBe(401);
    const body = await json(res);
    expect(body.error.code).toBe("unauthorized");
    return body.error.message;
  };

  describe("JWT bearer tokens (JWKS)", () => {
    it("accepts a valid token and takes the tenant from its claim", async () => {
      const res = await post(server.url, await jwt({ tenant: "plain", sub: "svc-1" }), { prompt: "hi" });
      expect(res.status).toBe(202);
      const { id } = await json(res);
      // The request belongs to the claimed tenant: its API key can read it.
      const read = await fetch(`${server.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${plain.api_key}` },
      });
      expect(read.status).toBe(200);
    });

    it("401 for a token signed by another key, expired, from another issuer, without or with an unknown tenant", async () => {
      await expect401(
        await post(server.url, await jwt({ tenant: "plain" }, { key: stranger }), { prompt: "x" }),
      );
      await expect401(
        await post(
          server.url,
          await jwt({ tenant: "plain" }, { expires: Math.floor(Date.now() / 1000) - 60 }),
          { prompt: "x" },
        ),
      );
      await expect401(
        await post(server.url, await jwt({ tenant: "plain" }, { issuer: "https://evil.example.com/" }), {
          prompt: "x",
        }),
      );
      expect(await expect401(await post(server.url, await jwt({ sub: "svc" }), { prompt: "x" }))).toMatch(
        /tenant/,
      );
      await expect401(await post(server.url, await jwt({ tenant: "nobody" }), { prompt: "x" }));
    });

    it("refuses alg none and HS256 by the JWT check itself (not as a malformed API key)", async () => {
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const claims = {
        tenant: "plain",
        iss: "https://id.example.com/",
        aud: "deepqueue",
        iat: now(),
        exp: now() + 300,
      };
      const none = `${b64({ alg: "none" })}.${b64(claims)}.`;
      expect(await expect401(await post(server.url, none, { prompt: "x" }))).toMatch(/invalid JWT/);
      // HS256 "signed" with the public JWK's x coordinate: the classic key-confusion attack.
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .sign(new TextEncoder().encode("a-secret-anyone-could-guess-000000"));
      expect(await expect401(await post(server.url, hs, { prompt: "x" }))).toMatch(/invalid JWT/);
    });

    it("requires exp, iat, iss and aud, and refuses a token older than the maximum age", async () => {
      const cases = [
        { expires: null },
        { issuedAt: null },
        { issuer: null },
        { audience: null },
        { audience: "another-service" },
        // Issued two hours ago, still unexpired: past DEEPQUEUE_JWT_MAX_AGE_SECONDS (1 h).
        { issuedAt: now() - 7200, expires: now() + 3600 },
      ];
      for (const options of cases) {
        const token = await jwt({ tenant: "plain" }, options);
        expect(
          await expect401(await post(server.url, token, { prompt: "x" })),
          JSON.stringify(options),
        ).toMatch(/invalid JWT/);
      }
      // Within the clock tolerance (30 s) a token from a slightly fast clock passes.
      expect(
        (await post(server.url, await jwt({ tenant: "plain" }, { issuedAt: now() + 10 }), { prompt: "x" }))
          .status,
      ).toBe(202);
    });

    it("a tenant that requires both factors: JWT + X-API-Key → 202, either alone or a wrong key → 401", async () => {
      const both = await makeTenant(stack, "both");
      await new DynamoTenantStore(stack.ddb, stack.prefix).update("both", { require_jwt_and_api_key: true });
      const fresh = await startIngestServer(stack, {
        DEEPQUEUE_JWKS_URL: jwksUrl,
        DEEPQUEUE_JWT_ISSUER: "https://id.example.com/",
        DEEPQUEUE_JWT_AUDIENCE: "deepqueue",
      });
      try {
        const token = await jwt({ tenant: "both" });
        expect((await post(fresh.url, token, { prompt: "x" }, { "x-api-key": both.api_key })).status).toBe(
          202,
        );
        expect(await expect401(await post(fresh.url, token, { prompt: "x" }))).toMatch(/X-API-Key/);
        expect(
          await expect401(await post(fresh.url, token, { prompt: "x" }, { "x-api-key": plain.api_key })),
        ).toMatch(/X-API-Key/);
        expect(await expect401(await post(fresh.url, both.api_key, { prompt: "x" }))).toMatch(/both a JWT/);
      } finally {
        await fresh.close();
      }
    });
  });

  describe("Standard Webhooks signatures", () => {
    const sign = (secret: string, body: string, options: { id?: string; at?: Date } = {}) => {
      const id = options.id ?? `msg_${Math.random().toString(36).slice(2)}`;
      const at = options.at ?? new Date();
      return {
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": new Webhook(secret).sign(id, at, body),
      };
    };

    it("a tenant that requires signatures: signed → 202, unsigned → 401", async () => {
      const body = JSON.stringify({ prompt: "signed hello" });
      expect((await post(server.url, signed.api_key, body, sign(signed.webhook_secret, body))).status).toBe(
        202,
      );
      expect(await expect401(await post(server.url, signed.api_key, body))).toMatch(/requires signed/);
    });

    it("401 for a bad signature, a stale timestamp, a body changed after signing, incomplete headers", async () => {
      const body = JSON.stringify({ prompt: "x" });
      await expect401(
        await post(server.url, signed.api_key, body, sign("whsec_d3Jvbmd3cm9uZ3dyb25nd3Jvbmc=", body)),
      );
      expect(
        await expect401(
          await post(
            server.url,
            signed.api_key,
            body,
            sign(signed.webhook_secret, body, { at: new Date(Date.now() - 6 * 60_000) }),
          ),
        ),
      ).toMatch(/stale|old/);
      await expect401(
        await post(
          server.url,
          signed.api_key,
          JSON.stringify({ prompt: "y" }),
          sign(signed.webhook_secret, body),
        ),
      );
      const { "webhook-signature": _s, ...partial } = sign(signed.webhook_secret, body);
      await expect401(await post(server.url, signed.api_key, body, partial));
    });

    it("refuses a replayed webhook-id, but lets a refused request's retry through", async () => {
      const body = JSON.stringify({ prompt: "replay me" });
      const headers = sign(signed.webhook_secret, body, { id: "msg_replay_1" });
      expect((await post(server.url, signed.api_key, body, headers)).status).toBe(202);
      expect(await expect401(await post(server.url, signed.api_key, body, headers))).toMatch(/replayed/);

      // A signed request refused for another reason (here: schema) keeps its webhook-id unspent.
      const bad = JSON.stringify({ prompt: "x", max_tokens: 0 });
      const badHeaders = sign(signed.webhook_secret, bad, { id: "msg_retry_1" });
      expect((await post(server.url, signed.api_key, bad, badHeaders)).status).toBe(400);
      expect((await post(server.url, signed.api_key, bad, badHeaders)).status).toBe(400);
    });

    it("verifies a signature a tenant sends even when it does not require one", async () => {
      const body = JSON.stringify({ prompt: "x" });
      expect((await post(server.url, plain.api_key, body, sign(plain.webhook_secret, body))).status).toBe(
        202,
      );
      await expect401(await post(server.url, plain.api_key, body, sign(signed.webhook_secret, body)));
    });

    it("verifies with secrets sealed at rest; without the key it answers 503, never 500", async () => {
      const key = randomBytes(32).toString("base64");
      const sealedTenants = new DynamoTenantStore(stack.ddb, stack.prefix, {
        secrets: secretBoxFromEnv({ DEEPQUEUE_SECRETS_KEY: key }),
      });
      const vault = await provisionTenant(
        { sqs: stack.sqs, tenants: sealedTenants, prefix: stack.prefix },
        { tenant: "vault" },
      );
      await sealedTenants.update("vault", { require_signatures: true });
      const body = JSON.stringify({ prompt: "sealed" });
      const withKey = await startIngestServer(stack, { DEEPQUEUE_SECRETS_KEY: key });
      const withoutKey = await startIngestServer(stack);
      try {
        expect((await post(withKey.url, vault.api_key, body, sign(vault.webhook_secret, body))).status).toBe(
          202,
        );
        const locked = await post(withoutKey.url, vault.api_key, body, sign(vault.webhook_secret, body));
        expect(locked.status).toBe(503);
        expect((await json(locked)).error.code).toBe("unavailable");
      } finally {
        await withKey.close();
        await withoutKey.close();
      }
    });

    it("accepts the previous secret during a rotation", async () => {
      const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
      const rot = await makeTenant(stack, "rot");
      await tenants.update("rot", { require_signatures: true });
      await tenants.rotateSecret("rot", "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3");
      const body = JSON.stringify({ prompt: "x" });
      const fresh = await startIngestServer(stack); // no cached tenant
      try {
        expect((await post(fresh.url, rot.api_key, body, sign(rot.webhook_secret, body))).status).toBe(202);
        expect(
          (await post(fresh.url, rot.api_key, body, sign("whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", body)))
            .status,
        ).toBe(202);
      } finally {
        await fresh.close();
      }
    });
  });
});
