/**
 * What the dashboard shows of a queue message: the body decoded (JSON when it
 * is JSON) with every secret replaced, so an operator can read a dead letter
 * without the page ever holding an API key, a webhook secret or a token.
 */

export const MASK = "••••••";

/** Words that make a key's value a secret wherever it appears (`max_tokens` is not one: whole words only). */
const SECRET_WORDS = new Set([
  "secret",
  "secrets",
  "token",
  "password",
  "passwd",
  "authorization",
  "signature",
  "cookie",
  "credential",
  "credentials",
  "apikey",
]);

/** @example isSecretKey("webhook_secrets") // true; isSecretKey("max_tokens") // false */
export function isSecretKey(key: string): boolean {
  const lower = key.toLowerCase();
  if (/api[_-]?key|key[_-]?hash/.test(lower)) return true;
  return lower.split(/[^a-z0-9]+/).some((word) => SECRET_WORDS.has(word));
}

/** Secret-shaped strings anywhere in a value: API keys, webhook secrets, bearer tokens, JWTs. */
const SECRET_VALUE: readonly RegExp[] = [
  /dq_[A-Za-z0-9_-]{16,}/g,
  /whsec_[A-Za-z0-9+/=]{8,}/g,
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g,
];

/** @example maskString("key dq_abcdefghijklmnopqrstu") // "key ••••••" */
export function maskString(text: string): string {
  let out = text;
  for (const pattern of SECRET_VALUE) out = out.replace(pattern, MASK);
  return out.replace(SECRET_QUERY, `$1${MASK}`);
}

/** URL query parameters that carry credentials (`?token=…`, `&api_key=…`, `sig=…`). */
const SECRET_QUERY =
  /([?&][^=&#\s"']*(?:token|key|secret|signature|sig|password|auth)[^=&#\s"']*=)[^&#\s"']+/gi;

/** A deep copy of `value` with secret keys' values and secret-shaped strings masked. */
export function maskSecrets(value: unknown): unknown {
  if (typeof value === "string") return maskString(value);
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, isSecretKey(k) && v !== null ? MASK : maskSecrets(v)]),
    );
  }
  return value;
}

/** Longest body shown; prompts can be large and the page must stay light. */
export const MAX_SHOWN_BODY = 4000;

/**
 * The message body as the page shows it: pretty JSON when it parses, the raw
 * text otherwise, masked either way and cut at MAX_SHOWN_BODY characters.
 */
export function decodeBody(body: string | undefined): { text: string; json: boolean; truncated: boolean } {
  let text: string;
  let json = false;
  try {
    text = JSON.stringify(maskSecrets(JSON.parse(body ?? "")), null, 2);
    json = true;
  } catch {
    text = maskString(body ?? "");
  }
  const truncated = text.length > MAX_SHOWN_BODY;
  return { text: truncated ? `${text.slice(0, MAX_SHOWN_BODY)}…` : text, json, truncated };
}
