import { EVENT_SOURCE } from "./cloudevent.ts";

/**
 * Wraps `data` in a CloudEvents 1.0 envelope. `id` must be stable for the
 * same logical event (retries keep it, so receivers can dedupe).
 *
 * @example buildEvent({ id: "evt_1", type: "deepqueue.request.completed", subject: "req_1", data })
 */
export function buildEvent<T extends string, D>(input: {
  id: string;
  type: T;
  subject: string;
  data: D;
  time?: string;
  traceparent?: string;
}) {
  return {
    specversion: "1.0" as const,
    id: input.id,
    source: EVENT_SOURCE,
    type: input.type,
    time: input.time ?? new Date().toISOString(),
    subject: input.subject,
    datacontenttype: "application/json" as const,
    // Left out of the JSON when undefined.
    traceparent: input.traceparent,
    data: input.data,
  };
}
