import { describe, expect, it } from "vitest";
import { newApiKey, newWebhookSecret } from "../functions/shared/ids.ts";
import { decodeBody, isSecretKey, MASK, MAX_SHOWN_BODY, maskSecrets } from "./mask.ts";

describe("masking what the dashboard shows", () => {
  it("masks secret keys' values and secret-shaped strings, and keeps the rest", () => {
    const key = newApiKey();
    const secret = newWebhookSecret();
    const masked = maskSecrets({
      prompt: `use ${key} please`,
      max_tokens: 16,
      usage: { prompt_tokens: 3 },
      webhook_secrets: [{ secret }],
      headers: { Authorization: "Bearer abcdefghijkl", "webhook-signature": "v1,xyz" },
      nested: [{ note: secret }],
    });
    expect(JSON.stringify(masked)).not.toContain(key);
    expect(JSON.stringify(masked)).not.toContain(secret);
    expect(masked).toEqual({
      prompt: `use ${MASK} please`,
      max_tokens: 16,
      usage: { prompt_tokens: 3 },
      webhook_secrets: MASK,
      headers: { Authorization: MASK, "webhook-signature": MASK },
      nested: [{ note: MASK }],
    });
  });

  it("masks credentials in URL query strings, and leaves other parameters", () => {
    expect(maskSecrets({ callback_url: "https://h.example/hook?tenant=a&token=s3cr3t&x=1" })).toEqual({
      callback_url: `https://h.example/hook?tenant=a&token=${MASK}&x=1`,
    });
    expect(maskSecrets("https://h.example/?sig=abc#f")).toBe(`https://h.example/?sig=${MASK}#f`);
  });

  it("tells secret keys by whole words", () => {
    for (const k of ["api_key", "apiKey", "key_hash", "token", "webhook_secret", "Authorization"])
      expect(isSecretKey(k)).toBe(true);
    for (const k of ["max_tokens", "prompt_tokens", "tokenizer", "key_hint_len", "monkey"])
      expect(isSecretKey(k)).toBe(false);
  });

  it("decodes JSON bodies pretty, masks plain text too, and cuts long bodies", () => {
    expect(decodeBody('{"a":1}')).toEqual({ text: '{\n  "a": 1\n}', json: true, truncated: false });
    const key = newApiKey();
    expect(decodeBody(`not json ${key}`).text).toBe(`not json ${MASK}`);
    const long = decodeBody("x".repeat(MAX_SHOWN_BODY + 10));
    expect(long.truncated).toBe(true);
    expect(long.text.length).toBe(MAX_SHOWN_BODY + 1);
  });
});
