/**
 * The page's stylesheet and script, served from memory at /assets/ (no CDN,
 * no build step: the dashboard works offline and from the compiled build/).
 */

export const DASHBOARD_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --fg: #1d2330; --muted: #687086; --line: #e2e5ec;
  --accent: #2f5bd3; --ok: #1a7f45; --bad: #b42318; --warn: #a15c00; --focus: #2f5bd3;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151c; --panel: #1a1f29; --fg: #e4e7ee; --muted: #98a0b3; --line: #2b3240;
    --accent: #8aa8ff; --ok: #5fd08e; --bad: #ff7b72; --warn: #e3b341; --focus: #8aa8ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; }
.skip:focus { left: 8px; top: 8px; background: var(--panel); padding: 6px 10px; z-index: 10; }
.top { display: flex; align-items: center; gap: 20px; padding: 10px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; text-decoration: none; color: var(--fg); letter-spacing: .02em; }
.top nav { display: flex; gap: 14px; flex-wrap: wrap; }
.top nav a { text-decoration: none; }
.top nav a:hover { text-decoration: underline; }
.live-state { margin-left: auto; color: var(--muted); font-size: 12px; }
.live-state.on::before { content: "●"; color: var(--ok); margin-right: 4px; }
.live-state.off::before { content: "●"; color: var(--bad); margin-right: 4px; }
.logout { margin: 0; }
main { padding: 16px 20px 40px; max-width: 1600px; margin: 0 auto; }
main:focus { outline: none; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; align-items: start; margin-bottom: 16px; }
.col { display: flex; flex-direction: column; gap: 16px; min-width: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; overflow-x: auto; }
@media (max-width: 1100px) { .grid { grid-template-columns: 1fr; } }
h2 { font-size: 15px; margin: 0 0 10px; }
h3 { font-size: 13px; margin: 14px 0 6px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid var(--line); vertical-align: middle; white-space: nowrap; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 500; }
.num { text-align: right; }
tr.dlq th { color: var(--muted); font-weight: 400; }
tr.alert th, tr.alert td { color: var(--bad); font-weight: 600; }
tr.current { background: color-mix(in srgb, var(--accent) 10%, transparent); }
.mono { font-family: var(--mono); font-size: 12px; }
.muted { color: var(--muted); }
.error { color: var(--bad); }
.note { color: var(--muted); font-size: 12px; margin: 8px 0 0; }
.spark { width: 100px; height: 22px; display: block; }
.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; border: 1px solid currentColor; }
.badge.ok, .badge.completed { color: var(--ok); }
.badge.bad, .badge.failed { color: var(--bad); }
.badge.queued { color: var(--muted); }
.badge.processing { color: var(--warn); }
.filters { display: flex; gap: 12px; align-items: end; margin: 0 0 10px; flex-wrap: wrap; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
select, input, button, .button { font: inherit; padding: 4px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--panel); color: var(--fg); }
button, .button { cursor: pointer; text-decoration: none; display: inline-block; }
button:hover, .button:hover { border-color: var(--accent); }
.danger { color: var(--bad); border-color: var(--bad); }
meter { width: 90px; vertical-align: middle; }
.dlq-queue { border-top: 1px solid var(--line); padding-top: 6px; }
.dlq-head { display: flex; align-items: center; gap: 12px; justify-content: space-between; }
details { margin: 4px 0; }
summary { cursor: pointer; padding: 3px 0; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; overflow: auto; max-height: 320px; white-space: pre-wrap; word-break: break-word; font: 12px/1.4 var(--mono); }
dl.facts, dl.attrs { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
dl.facts dt, dl.attrs dt { color: var(--muted); }
dl.facts dd, dl.attrs dd { margin: 0; word-break: break-all; }
.detail-grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 24px; }
@media (max-width: 900px) { .detail-grid { grid-template-columns: 1fr; } }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 16px; border-left: 2px solid var(--line); }
ol.timeline li { position: relative; padding: 3px 0 8px 8px; }
ol.timeline li::before { content: ""; position: absolute; left: -23px; top: 8px; width: 10px; height: 10px; border-radius: 50%; background: var(--ok); }
ol.timeline li.pending::before { background: var(--muted); }
ol.timeline li.failed::before { background: var(--bad); }
.job { margin: 0 0 8px; }
.job.ok { color: var(--ok); }
.login { max-width: 460px; margin: 40px auto; }
.login form { display: flex; flex-direction: column; gap: 10px; }
.login label { display: flex; flex-direction: column; gap: 4px; }
.actions { display: flex; gap: 10px; justify-content: flex-end; margin-top: 12px; }
dialog { border: 1px solid var(--line); border-radius: 8px; background: var(--panel); color: var(--fg); max-width: 480px; }
dialog::backdrop { background: rgba(0, 0, 0, .35); }
dialog h2 { margin-top: 0; }
`;

/**
 * Live updates: one EventSource per page; each `panels` event carries the
 * HTML of the panels that changed, swapped in by id. Focus and open
 * <details> survive a swap (by data-key), so a keyboard user is not thrown
 * back to the top every two seconds. The redrive button opens a <dialog>
 * to confirm; without script it is a link to a confirmation page.
 */
export const DASHBOARD_JS = `
"use strict";
(() => {
  const state = document.getElementById("live-state");
  const say = (text, cls) => { if (state) { state.textContent = text; state.className = "live-state " + cls; } };
  const last = new Map();

  function swap(id, markup) {
    const el = document.getElementById(id);
    if (!el || last.get(id) === markup) return;
    last.set(id, markup);
    const active = document.activeElement;
    const focusKey = active && el.contains(active) ? active.getAttribute("data-key") : null;
    const open = new Set([...el.querySelectorAll("details[open][data-key]")].map((d) => d.getAttribute("data-key")));
    const keep = [...el.querySelectorAll("select[data-key]")].map((s) => [s.getAttribute("data-key"), s.value]);
    el.innerHTML = markup;
    for (const [key, value] of keep) { const s = el.querySelector('select[data-key="' + CSS.escape(key) + '"]'); if (s) s.value = value; }
    for (const key of open) { const d = el.querySelector('details[data-key="' + CSS.escape(key) + '"]'); if (d) d.open = true; }
    if (focusKey) { const f = el.querySelector('[data-key="' + CSS.escape(focusKey) + '"]'); if (f) f.focus({ preventScroll: true }); }
  }

  const url = document.body.getAttribute("data-live");
  if (url) {
    for (const el of document.querySelectorAll("[data-panel]")) last.set(el.id, el.innerHTML);
    const source = new EventSource(url);
    source.addEventListener("open", () => say("live", "on"));
    source.addEventListener("error", () => say("reconnecting…", "off"));
    source.addEventListener("panels", (event) => {
      say("live", "on");
      const panels = JSON.parse(event.data);
      for (const id of Object.keys(panels)) swap(id, panels[id]);
    });
  }

  const dialog = document.getElementById("redrive-dialog");
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-redrive]") : null;
    if (!button || !dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    const dlq = button.getAttribute("data-redrive");
    const count = button.getAttribute("data-count");
    dialog.querySelector('input[name="dlq"]').value = dlq;
    dialog.querySelector("#redrive-dialog-text").textContent =
      "Move " + count + " message(s) from " + dlq + " back to " + button.getAttribute("data-source") + "? They will be processed again.";
    dialog.showModal();
  });
})();
`;
