import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { DeepqueueError } from "../functions/shared/errors.ts";
import { DASHBOARD_DEFAULTS, isLoopbackHost } from "./config.ts";

export const SESSION_COOKIE = "dq_dashboard";

/** Sessions kept in memory at most; past it the oldest are forgotten (their browsers log in again). */
const MAX_SESSIONS = 1000;

/** Failed logins allowed per client address per minute, before it is told to wait. */
export const LOGIN_ATTEMPTS_PER_MINUTE = 10;

export interface Session {
  id: string;
  /** Sent back with every state-changing form (synchronizer token). */
  csrf: string;
  expiresAt: number;
}

export interface AuthOptions {
  /**
   * Open (no login): only on loopback in dev mode. Anywhere else the admin
   * token is required, and the dashboard refuses to start without one.
   */
  open: boolean;
  adminToken?: string;
  /** @default DASHBOARD_DEFAULTS.sessionHours */
  sessionHours?: number;
  now?: () => number;
}

export type AuthVariables = { session: Session };

/** Paths served without a session: the login form and the static assets it uses. */
const PUBLIC = [/^\/login$/, /^\/assets\//, /^\/healthz$/];

/**
 * Access to the dashboard. Sessions live in memory (the dashboard is one
 * replica; a restart logs everyone out). The token is compared in constant
 * time, over SHA-256 digests so its length does not leak either.
 *
 * @example const auth = new DashboardAuth({ open: false, adminToken }); app.use(auth.middleware());
 */
export class DashboardAuth {
  readonly open: boolean;
  readonly #token: Buffer | undefined;
  readonly #sessions = new Map<string, Session>();
  readonly #failures = new Map<string, number[]>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: AuthOptions) {
    if (!options.open && !options.adminToken) {
      throw new DeepqueueError(
        "DEEPQUEUE_ADMIN_TOKEN: required when the dashboard is not on loopback in dev mode (at least 16 characters)",
      );
    }
    this.open = options.open;
    this.#token = options.adminToken ? digest(options.adminToken) : undefined;
    this.#ttlMs = (options.sessionHours ?? DASHBOARD_DEFAULTS.sessionHours) * 3_600_000;
    this.#now = options.now ?? Date.now;
  }

  /** @example auth.tokenMatches("…") // true only for DEEPQUEUE_ADMIN_TOKEN */
  tokenMatches(candidate: string): boolean {
    if (!this.#token) return false;
    return timingSafeEqual(digest(candidate), this.#token);
  }

  /** True when `client` has failed too many logins in the last minute. */
  throttled(client: string): boolean {
    const recent = (this.#failures.get(client) ?? []).filter((t) => t > this.#now() - 60_000);
    this.#failures.set(client, recent);
    return recent.length >= LOGIN_ATTEMPTS_PER_MINUTE;
  }

  recordFailure(client: string): void {
    const list = this.#failures.get(client) ?? [];
    list.push(this.#now());
    this.#failures.set(client, list);
  }

  /** A new session, with its cookie set on the response. */
  startSession(c: Context): Session {
    const session: Session = {
      id: randomBytes(32).toString("base64url"),
      csrf: randomBytes(32).toString("base64url"),
      expiresAt: this.#now() + this.#ttlMs,
    };
    this.#sessions.set(session.id, session);
    this.#prune();
    setCookie(c, SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: Math.floor(this.#ttlMs / 1000),
      secure: isHttps(c),
    });
    return session;
  }

  /** Keeps the session table bounded: expired ones go, then the oldest (clients that never send cookies). */
  #prune(): void {
    if (this.#sessions.size <= MAX_SESSIONS) return;
    const now = this.#now();
    for (const [id, s] of this.#sessions) if (s.expiresAt <= now) this.#sessions.delete(id);
    for (const id of this.#sessions.keys()) {
      if (this.#sessions.size <= MAX_SESSIONS) break;
      this.#sessions.delete(id);
    }
  }

  endSession(c: Context): void {
    const id = getCookie(c, SESSION_COOKIE);
    if (id) this.#sessions.delete(id);
    setCookie(c, SESSION_COOKIE, "", { httpOnly: true, sameSite: "Strict", path: "/", maxAge: 0 });
  }

  session(c: Context): Session | undefined {
    const id = getCookie(c, SESSION_COOKIE);
    const session = id ? this.#sessions.get(id) : undefined;
    if (!session) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(session.id);
      return undefined;
    }
    return session;
  }

  /** True when the form's CSRF token is this session's (constant-time) and the request is same-origin. */
  csrfValid(c: Context, session: Session, token: unknown): boolean {
    // Browsers say where a request comes from; a cross-site one is refused whatever it carries.
    if (c.req.header("sec-fetch-site") === "cross-site") return false;
    const origin = c.req.header("origin");
    if (origin && origin !== new URL(c.req.url).origin) return false;
    if (typeof token !== "string" || token.length === 0) return false;
    return timingSafeEqual(digest(token), digest(session.csrf));
  }

  /**
   * Every request: in open mode, the Host must be a loopback name (so a page
   * elsewhere cannot reach it through DNS rebinding) and a session is made
   * on first visit (it carries the CSRF token); otherwise a session from
   * `/login` is required.
   */
  middleware(): MiddlewareHandler<{ Variables: AuthVariables }> {
    return async (c, next) => {
      const path = new URL(c.req.url).pathname;
      if (this.open) {
        const host = (c.req.header("host") ?? "").replace(/:\d+$/, "");
        if (!isLoopbackHost(host)) return c.text("this dashboard answers on loopback names only", 403);
      }
      let session = this.session(c);
      if (!session && this.open) session = this.startSession(c);
      if (session) c.set("session", session);
      if (session || PUBLIC.some((p) => p.test(path))) return next();
      if (c.req.method === "GET" && c.req.header("accept")?.includes("text/html")) {
        return c.redirect(`/login?next=${encodeURIComponent(path)}`, 303);
      }
      return c.json({ error: { code: "unauthorized", message: "log in with the admin token first" } }, 401);
    };
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}
