import type { AddressInfo } from "node:net";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { createAdaptorServer } from "@hono/node-server";
import { getConnInfo } from "@hono/node-server/conninfo";
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { streamSSE } from "hono/streaming";
import { REQUEST_STATUSES, type RequestStatus } from "../events/common.ts";
import { createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { createLogger, type Logger } from "../functions/shared/logger.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { DynamoUsageStore } from "../functions/shared/stores/usage.ts";
import { DASHBOARD_CSS, DASHBOARD_JS } from "./assets.ts";
import { type AuthVariables, DashboardAuth } from "./auth.ts";
import { DASHBOARD_DEFAULTS, isLoopbackHost } from "./config.ts";
import { maskString } from "./mask.ts";
import { PipelineMonitor } from "./monitor.ts";
import {
  deadLettersPanel,
  type Filters,
  type HomePanels,
  homeBody,
  modelsPanel,
  queuesPanel,
  requestsPanel,
  tenantsPanel,
} from "./views/home.ts";
import { confirmRedriveBody, layout, loginBody } from "./views/layout.ts";
import { detailBody, detailPanel } from "./views/request.ts";

export interface DashboardOptions {
  /** SQS and DynamoDB endpoints; absent = the SDK's own (`AWS_ENDPOINT_URL_*`, or AWS). */
  endpoints?: { sqs?: string | undefined; dynamodb?: string | undefined };
  /** @default "us-east-1" */
  region?: string;
  /** Queue and table name prefix. @default "deepqueue" */
  prefix?: string;
  /** @default 8090; 0 picks a free port */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /**
   * Dev mode: on a loopback host the dashboard is open (no login). Anywhere
   * else, or without dev mode, `adminToken` is required.
   */
  devMode?: boolean;
  adminToken?: string;
  /** The model servers' `/metrics` URLs. */
  modelMetricsUrls?: readonly string[];
  /** @default DASHBOARD_DEFAULTS.pollSeconds × 1000 */
  pollMs?: number;
  /** While no page is open. @default DASHBOARD_DEFAULTS.idlePollSeconds × 1000 */
  idlePollMs?: number;
  logger?: Logger;
  /** Injected clients (tests); otherwise made from `endpoints` and destroyed on stop. */
  sqs?: SQSClient;
  ddb?: DynamoDBDocumentClient;
}

export interface Dashboard {
  url: string;
  /** True when no login is needed (loopback in dev mode). */
  open: boolean;
  stop(): Promise<void>;
}

const FILTER_STATUSES = new Set<string>(REQUEST_STATUSES);

function filtersOf(query: Record<string, string | undefined>): Filters {
  const tenant = query.tenant?.trim();
  const status = query.status?.trim();
  return {
    ...(tenant && /^[a-z0-9-]{1,32}$/.test(tenant) ? { tenant } : {}),
    ...(status && FILTER_STATUSES.has(status) ? { status } : {}),
  };
}

/**
 * The operator's dashboard: a server-rendered page (hono) whose panels are
 * refreshed over server-sent events, reading the same queues and tables as
 * every command. Open on loopback in dev mode; otherwise behind
 * DEEPQUEUE_ADMIN_TOKEN.
 *
 * @example
 * const dashboard = await startDashboard({ endpoints: { sqs, dynamodb }, prefix: "deepqueue", devMode: true });
 * console.log(dashboard.url); // http://127.0.0.1:8090
 * await dashboard.stop();
 */
export async function startDashboard(options: DashboardOptions = {}): Promise<Dashboard> {
  const host = options.host ?? DASHBOARD_DEFAULTS.host;
  const open = Boolean(options.devMode) && isLoopbackHost(host);
  const auth = new DashboardAuth({ open, ...(options.adminToken ? { adminToken: options.adminToken } : {}) });
  const logger = options.logger ?? createLogger({ name: "dashboard" });
  const prefix = options.prefix ?? "deepqueue";
  const region = options.region ?? "us-east-1";
  const ownClients = !options.sqs || !options.ddb;
  const sqs = options.sqs ?? createSqsClient({ region, ...endpoint(options.endpoints?.sqs) });
  const ddb = options.ddb ?? createDynamoClient({ region, ...endpoint(options.endpoints?.dynamodb) });
  const requests = new DynamoRequestStore(ddb, prefix);
  const tenants = new DynamoTenantStore(ddb, prefix);
  const monitor = new PipelineMonitor({
    sqs,
    tenants,
    usage: new DynamoUsageStore(ddb, prefix),
    prefix,
    modelMetricsUrls: options.modelMetricsUrls ?? [],
    logger,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.idlePollMs !== undefined ? { idlePollMs: options.idlePollMs } : {}),
  });

  const streams = new Set<() => void>();
  const app = createDashboardApp({ auth, monitor, requests, streams, logger });
  const server = createAdaptorServer({ fetch: app.fetch });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? DASHBOARD_DEFAULTS.port, host, () => resolve());
  });
  await monitor.start();
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  logger.info({ url, open }, "dashboard listening");
  return {
    url,
    open,
    async stop() {
      for (const close of streams) close();
      await monitor.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      if (ownClients) {
        if (!options.sqs) sqs.destroy();
        if (!options.ddb) ddb.destroy();
      }
    },
  };
}

function endpoint(url: string | undefined): { endpoint?: string } {
  return url ? { endpoint: url } : {};
}

/** The routes, apart from the listening server (tests drive it with `app.request`). */
function createDashboardApp(deps: {
  auth: DashboardAuth;
  monitor: PipelineMonitor;
  requests: DynamoRequestStore;
  streams: Set<() => void>;
  logger: Logger;
}) {
  const { auth, monitor, requests, streams, logger } = deps;
  const app = new Hono<{ Variables: AuthVariables }>();

  // Someone is looking: the monitor reads at the watched pace (and at once, if it was idle).
  app.use(async (_c, next) => {
    monitor.watch();
    await next();
  });
  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      // Not no-referrer: with it, browsers send `Origin: null` on form posts, which the CSRF check refuses.
      referrerPolicy: "same-origin",
    }),
  );
  app.get("/healthz", (c) => c.text("ok"));
  app.get("/assets/dashboard.css", (c) =>
    c.body(DASHBOARD_CSS, 200, { "content-type": "text/css; charset=utf-8" }),
  );
  app.get("/assets/dashboard.js", (c) =>
    c.body(DASHBOARD_JS, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );
  app.get("/favicon.ico", (c) => c.body(null, 204));
  app.use(auth.middleware());

  // ---- login ----
  app.get("/login", (c) => {
    if (auth.open) return c.redirect("/", 303);
    return c.html(
      layout({ title: "Log in", body: loginBody({ next: safeNext(c.req.query("next")) }), open: false }),
    );
  });
  app.post("/login", async (c) => {
    if (auth.open) return c.redirect("/", 303);
    const client = getConnInfo(c).remote.address ?? "unknown";
    const form = await c.req.parseBody();
    const next = safeNext(typeof form.next === "string" ? form.next : undefined);
    if (auth.throttled(client)) {
      return c.html(
        layout({
          title: "Log in",
          body: loginBody({ next, error: "Too many attempts; wait a minute." }),
          open: false,
        }),
        429,
      );
    }
    if (typeof form.token !== "string" || !auth.tokenMatches(form.token)) {
      auth.recordFailure(client);
      logger.warn({ client }, "dashboard login refused");
      return c.html(
        layout({ title: "Log in", body: loginBody({ next, error: "Wrong token." }), open: false }),
        401,
      );
    }
    auth.startSession(c);
    return c.redirect(next, 303);
  });
  app.post("/logout", async (c) => {
    const session = c.get("session");
    const form = await c.req.parseBody();
    if (!auth.csrfValid(c, session, form.csrf)) return c.text("invalid CSRF token", 403);
    auth.endSession(c);
    return c.redirect("/login", 303);
  });

  // ---- pages ----
  async function homePanels(filters: Filters): Promise<HomePanels> {
    const now = Date.now();
    const tenantView = monitor.tenants();
    let recent: Awaited<ReturnType<typeof requests.listRecent>> | { error: string };
    try {
      recent = await requests.listRecent({
        ...(filters.tenant ? { tenant: filters.tenant } : {}),
        ...(filters.status ? { status: filters.status as RequestStatus } : {}),
        limit: DASHBOARD_DEFAULTS.recentLimit,
      });
    } catch (error) {
      recent = { error: indexHint(error) };
    }
    const queues = monitor.queues();
    return {
      queues: queuesPanel(queues),
      requests: requestsPanel(
        recent,
        filters,
        tenantView.tenants.map((t) => t.tenant),
        now,
      ),
      models: modelsPanel(monitor.models()),
      tenants: tenantsPanel(tenantView),
      "dead-letters": deadLettersPanel(
        queues.filter((q) => q.dlq).map((queue) => ({ queue, messages: monitor.deadLetters(queue.name) })),
        monitor.jobs(),
      ),
    };
  }

  async function detail(id: string) {
    const record = await requests.get(id, { progress: true });
    const conversation = record?.conversation_key
      ? (await requests.listConversation(record.conversation_key)).slice(-50)
      : [];
    return detailPanel(record, id, conversation, Date.now());
  }

  app.get("/", async (c) => {
    const filters = filtersOf(c.req.query());
    const params = new URLSearchParams({ view: "home", ...filters });
    return c.html(
      layout({
        title: "Pipeline",
        body: homeBody(await homePanels(filters)),
        live: `/events?${params}`,
        csrf: c.get("session").csrf,
        open: auth.open,
      }),
    );
  });

  app.get("/requests/:id", async (c) => {
    const id = c.req.param("id");
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) return c.text("not a request id", 400);
    return c.html(
      layout({
        title: id,
        body: detailBody(await detail(id)),
        live: `/events?${new URLSearchParams({ view: "request", id })}`,
        csrf: c.get("session").csrf,
        open: auth.open,
      }),
    );
  });

  app.get("/events", (c) => {
    const query = c.req.query();
    const id = query.id ?? "";
    if (query.view === "request" && !/^[A-Za-z0-9_-]{1,100}$/.test(id))
      return c.text("not a request id", 400);
    const filters = filtersOf(query);
    return streamSSE(c, async (stream) => {
      let closed = false;
      let sending = false;
      let done: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => {
        done = resolve;
      });
      const close = () => {
        closed = true;
        done();
      };
      streams.add(close);
      stream.onAbort(close);
      const push = async () => {
        if (closed || sending) return;
        sending = true;
        try {
          const panels = query.view === "request" ? { detail: await detail(id) } : await homePanels(filters);
          const data = JSON.stringify(
            Object.fromEntries(Object.entries(panels).map(([k, v]) => [k, String(v)])),
          );
          await stream.writeSSE({ event: "panels", data });
        } catch (error) {
          logger.debug({ err: error }, "dashboard event not sent");
        } finally {
          sending = false;
        }
      };
      const unsubscribe = monitor.subscribe(() => void push());
      await push();
      await finished;
      unsubscribe();
      streams.delete(close);
    });
  });

  // ---- redrive ----
  app.get("/redrive", (c) => {
    const dlq = c.req.query("dlq") ?? "";
    const queue = monitor.queue(dlq);
    if (!queue?.dlq || !queue.source)
      return c.text(`"${dlq}" is not a dead-letter queue this dashboard shows`, 400);
    return c.html(
      layout({
        title: "Redrive",
        body: confirmRedriveBody({
          dlq,
          source: queue.source,
          count: (queue.latest?.visible ?? 0) + (queue.latest?.inFlight ?? 0),
          csrf: c.get("session").csrf,
        }),
        csrf: c.get("session").csrf,
        open: auth.open,
      }),
    );
  });
  app.post("/redrive", async (c) => {
    const form = await c.req.parseBody();
    if (!auth.csrfValid(c, c.get("session"), form.csrf)) {
      logger.warn("dashboard redrive refused: invalid CSRF token");
      return c.text("invalid CSRF token: reload the page and try again", 403);
    }
    if (form.confirm !== "yes") return c.text("not confirmed", 400);
    const dlq = typeof form.dlq === "string" ? form.dlq : "";
    try {
      const job = monitor.startRedrive(dlq);
      logger.info({ dlq: job.dlq, source: job.source }, "redrive started from the dashboard");
    } catch (error) {
      return c.text(error instanceof Error ? error.message : String(error), 400);
    }
    return c.redirect("/#dead-letters", 303);
  });

  app.notFound((c) => c.text("not found", 404));
  app.onError((error, c) => {
    logger.error({ err: error }, "dashboard error");
    return c.text("internal error (see the dashboard's log)", 500);
  });
  return app;
}

/** Only same-site paths after login (no open redirect). */
function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])/.test(next) ? next : "/";
}

function indexHint(error: unknown): string {
  const message = maskString(error instanceof Error ? error.message : String(error));
  if (/specified index|index/i.test(message) && /ValidationException|index/i.test(message)) {
    return `${message} — the requests table predates the dashboard's indexes: run \`deepqueue bootstrap\` (on AWS it adds them; the dev emulator cannot, delete .deepqueue/ to recreate the tables)`;
  }
  return message;
}
