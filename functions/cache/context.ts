import type { AcceptedRequest, ChatMessage } from "../../events/index.ts";
import type { Logger } from "../shared/logger.ts";
import {
  type ConversationHistory,
  type ConversationStore,
  type ConversationSummary,
  type ConversationTurn,
  historyMessages,
  turnTokens,
} from "../shared/stores/conversations.ts";
import { conversationKey, type RequestStore } from "../shared/stores/requests.ts";
import { countChatTokens } from "../shared/tokenizer.ts";
import { CACHE_DEFAULTS } from "./config.ts";

/**
 * Conversation context assembly (cache stage): a turn waits until every
 * earlier turn of its conversation is terminal, then sees the running summary
 * and the turns after it, followed by its own messages.
 *
 * Cost stays flat with the conversation's length: only the summary and the
 * turns after it are read (requests after `covers_through` too), each turn's
 * tokens were counted once when it was stored, and when the history passes the
 * budget the older turns are folded into the summary in chunks that fit the
 * model's window (a turn larger than a chunk is clipped for the summarizer), so
 * one huge turn never makes every later summary fail. When summarizing fails,
 * the oldest turns are left out of this turn's context (whole turns, by their
 * stored counts, no re-tokenizing).
 */

export interface ContextDeps {
  requests: Pick<RequestStore, "listConversation">;
  conversations: ConversationStore;
  /** Summarises a transcript (a model call); absent = truncate only. */
  summarize?: ((transcript: ChatMessage[]) => Promise<string>) | undefined;
  historyTokenBudget: number;
  maxModelLen: number;
  /** Tokens a summarizer call needs besides the transcript. @default CACHE_DEFAULTS.summaryReserveTokens */
  summaryReserveTokens?: number;
  /** Most turns one conversation may have; later turns fail with `invalid_request`. @default CACHE_DEFAULTS.maxConversationTurns */
  maxTurns?: number;
  logger?: Logger | undefined;
}

export type ContextOutcome =
  | { ready: false; waitingFor: string }
  | {
      ready: true;
      context: ChatMessage[] | undefined;
      summarized: boolean;
      truncated: boolean;
      /** Tokens of the history (summary and earlier turns) this turn carries. */
      historyTokens: number;
    }
  /** The turn is refused (the conversation's turn cap): fail it with `invalid_request` and this reason. */
  | { ready: "refused"; reason: string };

/** A turn's own messages: a prompt becomes one user message. */
export function turnMessages(request: Pick<AcceptedRequest, "prompt" | "messages">): ChatMessage[] {
  return request.messages ?? [{ role: "user", content: request.prompt ?? "" }];
}

const SUMMARY_PREFIX = "Summary of the earlier conversation: ";

/** The summary's tokens as `historyMessages` renders it. */
function summaryTokens(summary: ConversationSummary | undefined): number {
  if (!summary?.summary) return 0;
  return (
    summary.tokens ?? countChatTokens([{ role: "system", content: `${SUMMARY_PREFIX}${summary.summary}` }])
  );
}

/**
 * @example
 * const outcome = await assembleContext(deps, request);
 * if (!outcome.ready) return deferRecord(...); // an earlier turn is still running
 */
export async function assembleContext(deps: ContextDeps, request: AcceptedRequest): Promise<ContextOutcome> {
  const conversationId = request.conversation_id;
  if (!conversationId) {
    return { ready: true, context: undefined, summarized: false, truncated: false, historyTokens: 0 };
  }
  const maxTurns = deps.maxTurns ?? CACHE_DEFAULTS.maxConversationTurns;
  const history = await earlierTurns(deps, request, conversationId);
  if ("waitingFor" in history) return { ready: false, waitingFor: history.waitingFor };

  const turnCount = (history.summary?.turns ?? 0) + history.turns.length;
  if (turnCount + 1 > maxTurns) {
    return {
      ready: "refused",
      reason: `conversation ${conversationId} has reached its limit of ${maxTurns} turns; start a new conversation_id`,
    };
  }

  const own = turnMessages(request);
  // prompt_tokens was counted at ingest; a few more for the chat template's role markers.
  const ownTokens = request.prompt_tokens + 4 * own.length;
  const budget = Math.max(
    0,
    Math.min(deps.historyTokenBudget, deps.maxModelLen - request.max_tokens - ownTokens),
  );
  const total = summaryTokens(history.summary) + sum(history.turns.map(turnTokens));
  if (total === 0 || total <= budget) {
    return {
      ready: true,
      context: [...historyMessages(history), ...own],
      summarized: false,
      truncated: false,
      historyTokens: total,
    };
  }
  const compressed = await compress(deps, request, conversationId, history, budget);
  return { ready: true, ...compressed, context: [...compressed.messages, ...own] };
}

/**
 * The history before `request`: the running summary and the turns after it, once every
 * earlier turn is terminal (else the one to wait for). A completed turn whose append was
 * lost (its worker died between the two writes) is appended first.
 */
async function earlierTurns(
  deps: ContextDeps,
  request: AcceptedRequest,
  conversationId: string,
): Promise<ConversationHistory | { waitingFor: string }> {
  let history = await deps.conversations.history(request.tenant, conversationId);
  const coveredThrough = history.summary?.covers_through;
  // Only the requests after the summary: those before it are terminal and covered.
  const listed = await deps.requests.listConversation(
    conversationKey(request.tenant, conversationId),
    coveredThrough ? { after: coveredThrough } : {},
  );
  const earlier = listed.filter((r) => r.id < request.id);
  const pending = earlier.find((r) => r.status !== "completed" && r.status !== "failed");
  if (pending) return { waitingFor: pending.id };
  const known = new Set(history.turns.map((t) => t.request_id));
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
  return { ...history, turns: history.turns.filter((t) => t.request_id < request.id) };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

async function compress(
  deps: ContextDeps,
  request: AcceptedRequest,
  conversationId: string,
  history: ConversationHistory,
  budget: number,
): Promise<{ messages: ChatMessage[]; summarized: boolean; truncated: boolean; historyTokens: number }> {
  const turns = history.turns;
  // Keep the newest turns verbatim within half the budget; the rest goes into the summary.
  let keepFrom = turns.length;
  let kept = 0;
  while (keepFrom > 0 && kept + turnTokens(turns[keepFrom - 1]!) <= budget / 2) {
    kept += turnTokens(turns[keepFrom - 1]!);
    keepFrom -= 1;
  }
  const keep = turns.slice(keepFrom);
  const older = turns.slice(0, keepFrom);
  if (older.length > 0 && deps.summarize) {
    try {
      const summary = await foldIntoSummary(deps, history.summary, older);
      if (summary) {
        await deps.conversations.setSummary(request.tenant, conversationId, summary);
        const fitted = fitToBudget(summary, keep, budget);
        return { ...fitted, summarized: true, truncated: fitted.truncated };
      }
    } catch (error) {
      deps.logger?.warn(
        { err: error, request_id: request.id, conversation_id: conversationId },
        "summarisation failed; truncating the history instead",
      );
    }
  }
  const fitted = fitToBudget(history.summary, turns, budget);
  return { ...fitted, summarized: false, truncated: true };
}

/**
 * The history that fits `budget`: the summary and the newest turns, dropping
 * whole turns oldest first (then the summary), by their stored token counts.
 */
function fitToBudget(
  summary: ConversationSummary | undefined,
  turns: ConversationTurn[],
  budget: number,
): { messages: ChatMessage[]; truncated: boolean; historyTokens: number } {
  let start = 0;
  let total = summaryTokens(summary) + sum(turns.map(turnTokens));
  while (start < turns.length && total > budget) total -= turnTokens(turns[start++]!);
  let kept = summary;
  if (total > budget && summary) {
    total -= summaryTokens(summary);
    kept = undefined;
  }
  const rest = turns.slice(start);
  return {
    messages: historyMessages({ turns: rest, summary: kept }),
    truncated: start > 0 || kept !== summary,
    historyTokens: total,
  };
}

/**
 * Folds `older` into the running summary, one summarizer call per chunk that
 * fits the window: each call sees the summary so far and as many turns as fit.
 */
async function foldIntoSummary(
  deps: ContextDeps,
  previous: ConversationSummary | undefined,
  older: ConversationTurn[],
): Promise<ConversationSummary | undefined> {
  const chunkBudget = deps.maxModelLen - (deps.summaryReserveTokens ?? CACHE_DEFAULTS.summaryReserveTokens);
  let running = previous?.summary ?? "";
  let runningTokens = summaryTokens(previous);
  let i = 0;
  while (i < older.length) {
    const transcript: ChatMessage[] = running ? [{ role: "system", content: running }] : [];
    let used = runningTokens;
    const first = i;
    while (i < older.length) {
      const turn = older[i]!;
      const n = turnTokens(turn);
      if (used + n > chunkBudget) {
        if (i > first) break;
        // One turn alone is larger than a chunk: the summarizer sees a clipped copy.
        transcript.push(...clipTurn(turn, Math.max(64, chunkBudget - used)));
        used = chunkBudget;
        i += 1;
        break;
      }
      transcript.push(...turn.messages, { role: "assistant", content: turn.answer });
      used += n;
      i += 1;
    }
    const next = (await deps.summarize!(transcript)).trim();
    if (!next) return undefined;
    running = next;
    runningTokens = countChatTokens([{ role: "system", content: `${SUMMARY_PREFIX}${running}` }]);
  }
  return {
    summary: running,
    covers_through: older.at(-1)!.request_id,
    created_at: new Date().toISOString(),
    turns: (previous?.turns ?? 0) + older.length,
    tokens: runningTokens,
  };
}

const CLIP_MARK = " […]";

/** A turn's messages cut to fit `target` tokens, each message keeping its beginning. */
function clipTurn(turn: ConversationTurn, target: number): ChatMessage[] {
  const messages: ChatMessage[] = [...turn.messages, { role: "assistant", content: turn.answer }];
  let ratio = target / turnTokens(turn);
  for (let attempt = 0; attempt < 6; attempt++) {
    const clipped = messages.map((m) => ({
      ...m,
      content:
        m.content.length > 32
          ? `${m.content.slice(0, Math.floor(m.content.length * ratio))}${CLIP_MARK}`
          : m.content,
    }));
    if (countChatTokens(clipped) <= target) return clipped;
    ratio *= 0.7;
  }
  return messages.map((m) => ({ ...m, content: m.content.slice(0, 16) + CLIP_MARK }));
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
