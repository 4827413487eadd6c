import { raw } from "hono/html";
import { type Html, h } from "./html.ts";

/** The page around every view, and the two small forms (login, redrive confirmation). */

export function layout(options: {
  title: string;
  body: Html;
  live?: string;
  csrf?: string;
  open: boolean;
}): Html {
  return h`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · deepqueue</title>
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head>
<body${raw(options.live ? ` data-live="${escapeAttr(options.live)}"` : "")}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">deepqueue</a>
  <nav aria-label="sections"><a href="/#queues">Queues</a><a href="/#requests">Requests</a><a href="/#tenants">Tenants</a><a href="/#dead-letters">Dead letters</a><a href="/#models">Model servers</a></nav>
  <span class="live-state" id="live-state" role="status" aria-live="polite">${options.live ? "connecting…" : ""}</span>
  ${
    options.open || !options.csrf
      ? ""
      : h`<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="${options.csrf}"><button type="submit">Log out</button></form>`
  }
</header>
<main id="main" tabindex="-1">
${options.body}
</main>
${
  options.csrf
    ? h`<dialog id="redrive-dialog" aria-labelledby="redrive-dialog-title">
  <form method="post" action="/redrive">
    <h2 id="redrive-dialog-title">Redrive dead letters?</h2>
    <p id="redrive-dialog-text"></p>
    <input type="hidden" name="dlq" value="">
    <input type="hidden" name="csrf" value="${options.csrf}">
    <div class="actions"><button type="submit" formmethod="dialog" value="cancel" autofocus>Cancel</button><button type="submit" class="danger" name="confirm" value="yes">Redrive</button></div>
  </form>
</dialog>`
    : ""
}
</body>
</html>`;
}

function escapeAttr(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

export function loginBody(options: { next: string; error?: string }): Html {
  return h`<section class="panel login" aria-labelledby="login-title">
<h2 id="login-title">Log in</h2>
<p>This dashboard needs the admin token (<code>DEEPQUEUE_ADMIN_TOKEN</code>).</p>
${options.error ? h`<p class="error" role="alert">${options.error}</p>` : ""}
<form method="post" action="/login">
  <input type="hidden" name="next" value="${options.next}">
  <label>admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Log in</button>
</form>
</section>`;
}

export function confirmRedriveBody(options: {
  dlq: string;
  source: string;
  count: number;
  csrf: string;
}): Html {
  return h`<section class="panel login" aria-labelledby="confirm-title">
<h2 id="confirm-title">Redrive dead letters?</h2>
<p>Move ${options.count} message(s) from <strong>${options.dlq}</strong> back to <strong>${options.source}</strong>? They will be processed again.</p>
<form method="post" action="/redrive">
  <input type="hidden" name="dlq" value="${options.dlq}">
  <input type="hidden" name="csrf" value="${options.csrf}">
  <div class="actions"><a class="button" href="/#dead-letters">Cancel</a><button type="submit" class="danger" name="confirm" value="yes">Redrive</button></div>
</form>
</section>`;
}
