import {
  buildEvent,
  type DeliveryRequest,
  type DeliveryRequestedEvent,
  EVENT_TYPES,
  type ResultEvent,
} from "../../events/index.ts";
import { CLAIM_CHECK_HEADROOM_BYTES, claimCheck, SQS_MAX_MESSAGE_BYTES } from "./claim-check.ts";
import { childTraceparent, newEventId } from "./ids.ts";
import { type StoredRequest, toPublicRecord } from "./stores/requests.ts";

/**
 * The result event's id is derived from the request id, so every repeat of a
 * terminal transition (a redelivered message, a restarted worker) emits the
 * same event id and consumers can dedupe on it.
 *
 * @example resultEventId("req_0193ab") // "evt_req_0193ab"
 */
export function resultEventId(requestId: string): string {
  return `evt_${requestId}`;
}

/** The result event (docs/api.md#events) of a terminal record. */
export function resultEvent(stored: StoredRequest): ResultEvent {
  if (stored.status !== "completed" && stored.status !== "failed") {
    throw new Error(`request ${stored.id} is ${stored.status}, not terminal`);
  }
  return buildEvent({
    id: resultEventId(stored.id),
    type: stored.status === "completed" ? EVENT_TYPES.requestCompleted : EVENT_TYPES.requestFailed,
    subject: stored.id,
    time: stored.completed_at ?? new Date().toISOString(),
    data: toPublicRecord(stored),
    ...(stored.traceparent ? { traceparent: stored.traceparent } : {}),
  });
}

/**
 * The delivery-queue message for a terminal record. A result too large for an
 * SQS message travels claim-checked (functions/shared/claim-check.ts): deliver
 * reads the full record back for the callback.
 */
export function deliveryEvent(stored: StoredRequest): DeliveryRequestedEvent {
  const data: DeliveryRequest = {
    tenant: stored.tenant,
    event: claimCheck(resultEvent(stored), SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES),
    ...(stored.request.callback_url ? { callback_url: stored.request.callback_url } : {}),
  };
  return buildEvent({
    id: newEventId(),
    type: EVENT_TYPES.deliveryRequested,
    subject: stored.id,
    data,
    traceparent: childTraceparent(stored.traceparent),
  });
}
