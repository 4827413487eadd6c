/**
 * The headless Chromium the dashboard's browser test and screenshot script drive (playwright-core,
 * Debian's Chromium: no browser download). DEEPQUEUE_CHROMIUM overrides the path.
 */
export const CHROMIUM_PATH = process.env.DEEPQUEUE_CHROMIUM ?? "/usr/bin/chromium";

/** Flags for a quiet, sandbox-free headless run in a container. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
