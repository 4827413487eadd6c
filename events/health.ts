import { z } from "zod";
import { errorDetailSchema } from "./request-record.ts";

/** What `GET /healthz` checked: the requests queue and the requests table. */
export const healthChecksSchema = z.object({ queue: z.boolean(), table: z.boolean() });

/** `GET /healthz` when both answer (200). */
export const healthOkSchema = z.object({ status: z.literal("ok"), checks: healthChecksSchema });
export type HealthOk = z.infer<typeof healthOkSchema>;

/** `GET /healthz` when either does not (503): the error body plus what failed. */
export const healthFailedSchema = z.object({ error: errorDetailSchema, checks: healthChecksSchema });
export type HealthFailed = z.infer<typeof healthFailedSchema>;
