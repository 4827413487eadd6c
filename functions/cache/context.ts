import type { AcceptedRequest, ChatMessage } from "../../events/index.ts";
import type { Logger } from "../shared/logger.ts";
import {
  type ConversationHistory,
  type ConversationStore,
  type ConversationTurn,
  historyMessages,
  uncoveredTurns,
} from "../shared/stores/conversations.ts";
import { conversationKey, type RequestStore } from "../shared/stores/requests.ts";
import { countChatTokens } from "../shared/tokenizer.ts";

/**
 * Conversation context assembly (cache stage): a turn waits until every
 * earlier turn of its conversation is terminal, then sees the summary and
 * every earlier answered turn in arrival order, followed by its own messages.
 * History beyond the token budget is compressed into a summary the model
 * writes, or truncated (oldest first) when that fails.
 */

export interface ContextDeps {
  requests: Pick<RequestStore, "listConversation">;
  conversations: ConversationStore;
  /** Summarises a transcript (a model call); absent = truncate only. */
  summarize?: ((transcript: ChatMessage[]) => Promise<string>) | undefined;
  historyTokenBudget: number;
  maxModelLen: number;
  logger?: Logger | undefined;
}

export type ContextOutcome =
  | { ready: false; waitingFor: string }
  | { ready: true; context: ChatMessage[] | undefined; summarized: boolean; truncated: boolean };

/** A turn's own messages: a prompt becomes one user message. */
export function turnMessages(request: Pick<AcceptedRequest, "prompt" | "messages">): ChatMessage[] {
  return request.messages ?? [{ role: "user", content: request.prompt ?? "" }];
}

function turnTokens(turn: ConversationTurn): number {
  return countChatTokens([...turn.messages, { role: "assistant", content: turn.answer }]);
}

/**
 * @example
 * const outcome = await assembleContext(deps, request);
 * if (!outcome.ready) return deferRecord(...); // an earlier turn is still running
 */
export async function assembleContext(deps: ContextDeps, request: AcceptedRequest): Promise<ContextOutcome> {
  const conversationId = request.conversation_id;
  if (!conversationId) return { ready: true, context: undefined, summarized: false, truncated: false };
  const all = await deps.requests.listConversation(conversationKey(request.tenant, conversationId));
  const earlier = all.filter((r) => r.id < request.id);
  const pending = earlier.find((r) => r.status !== "completed" && r.status !== "failed");
  if (pending) return { ready: false, waitingFor: pending.id };

  let history = await deps.conversations.history(request.tenant, conversationId);
  // Repair: a completed turn whose append was lost (its worker died between the two writes).
  const known = new Set(history.turns.map((t) => t.request_id));
  const coveredThrough = history.summary?.covers_through;
  let repaired = false;
  for (const r of earlier) {
    if (r.status !== "completed" || !r.result || known.has(r.id)) continue;
    if (coveredThrough && r.id <= coveredThrough) continue;
    await deps.conversations.appendTurn(request.tenant, conversationId, {
      request_id: r.id,
      messages: turnMessages(r.request),
      answer: r.result.text,
      created_at: r.completed_at ?? r.created_at,
    });
    repaired = true;
  }
  if (repaired) history = await deps.conversations.history(request.tenant, conversationId);
  // A redelivered turn must see only the turns before it, never itself or later ones.
  history = { ...history, turns: history.turns.filter((t) => t.request_id < request.id) };

  const own = turnMessages(request);
  const budget = Math.max(
    0,
    Math.min(deps.historyTokenBudget, deps.maxModelLen - request.max_tokens - countChatTokens(own)),
  );
  const past = historyMessages(history);
  if (past.length === 0 || countChatTokens(past) <= budget) {
    return { ready: true, context: [...past, ...own], summarized: false, truncated: false };
  }
  const compressed = await compress(deps, request, conversationId, history, budget);
  return { ready: true, context: [...compressed.messages, ...own], ...compressed };
}

async function compress(
  deps: ContextDeps,
  request: AcceptedRequest,
  conversationId: string,
  history: ConversationHistory,
  budget: number,
): Promise<{ messages: ChatMessage[]; summarized: boolean; truncated: boolean }> {
  const turns = uncoveredTurns(history);
  // Keep the newest turns verbatim within half the budget; the rest goes into the summary.
  const keep: ConversationTurn[] = [];
  let kept = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const n = turnTokens(turns[i]!);
    if (kept + n > budget / 2) break;
    keep.unshift(turns[i]!);
    kept += n;
  }
  const older = turns.slice(0, turns.length - keep.length);
  if (older.length > 0 && deps.summarize) {
    const transcript: ChatMessage[] = [
      ...(history.summary ? [{ role: "system" as const, content: history.summary.summary }] : []),
      ...older.flatMap((t) => [...t.messages, { role: "assistant" as const, content: t.answer }]),
    ];
    try {
      const summary = (await deps.summarize(transcript)).trim();
      if (summary) {
        const stored = {
          summary,
          covers_through: older.at(-1)!.request_id,
          created_at: new Date().toISOString(),
        };
        await deps.conversations.setSummary(request.tenant, conversationId, stored);
        const messages = historyMessages({ turns: keep, summary: stored });
        if (countChatTokens(messages) <= budget) return { messages, summarized: true, truncated: false };
        return { messages: truncate(messages, budget), summarized: true, truncated: true };
      }
    } catch (error) {
      deps.logger?.warn(
        { err: error, request_id: request.id, conversation_id: conversationId },
        "summarisation failed; truncating the history instead",
      );
    }
  }
  return { messages: truncate(historyMessages(history), budget), summarized: false, truncated: true };
}

/** Drops the oldest messages until the rest fits `budget` tokens. */
function truncate(messages: ChatMessage[], budget: number): ChatMessage[] {
  let start = 0;
  while (start < messages.length && countChatTokens(messages.slice(start)) > budget) start += 1;
  return messages.slice(start);
}

/** The summarisation instruction, given a transcript. */
export function summarizationMessages(transcript: ChatMessage[], maxWords: number): ChatMessage[] {
  const text = transcript
    .map(
      (m) =>
        `${m.role === "assistant" ? "Assistant" : m.role === "system" ? "Earlier summary" : "User"}: ${m.content}`,
    )
    .join("\n");
  return [
    {
      role: "system",
      content:
        "You compress conversations so they can be continued later. Keep names, facts, numbers, decisions and open questions. Write plain prose in the third person.",
    },
    { role: "user", content: `Summarise this conversation in at most ${maxWords} words:\n\n${text}` },
  ];
}
