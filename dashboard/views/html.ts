import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

/**
 * Every piece of the page is rendered on the server with hono's `html`, which
 * escapes every interpolated value. The live script swaps panels in by id;
 * the first page load renders the same ones, so the page works, and reads,
 * without script too.
 */
export type Html = HtmlEscapedString;

/** `html` for templates without promises inside: always synchronous. */
export const h = (strings: TemplateStringsArray, ...values: unknown[]): Html =>
  html(strings, ...values) as Html;
