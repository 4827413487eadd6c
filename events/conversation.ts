import { z } from "zod";
import { ROLES } from "./common.ts";

/** `GET /v1/conversations/{id}` (docs/api.md#get-v1conversationsid). `summary` stands for older turns that were compressed. */
export const conversationSchema = z.object({
  id: z.string(),
  messages: z.array(
    z.object({
      role: z.enum(ROLES),
      content: z.string(),
      request_id: z.string().optional(),
    }),
  ),
  summary: z.string().optional(),
});
export type Conversation = z.infer<typeof conversationSchema>;
