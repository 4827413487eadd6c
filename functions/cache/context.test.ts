import { describe, expect, it } from "vitest";
import type { AcceptedRequest, ChatMessage } from "../../events/index.ts";
import { newRequestId } from "../shared/ids.ts";
import {
  type ConversationHistory,
  type ConversationStore,
  type ConversationSummary,
  type ConversationTurn,
  turnTokens,
} from "../shared/stores/conversations.ts";
import type { StoredRequest } from "../shared/stores/requests.ts";
import { countChatTokens, countPromptTokens } from "../shared/tokenizer.ts";
import { assembleContext, type ContextDeps, turnMessages } from "./context.ts";

/** The DynamoDB store's semantics in memory (its own test covers the real one), counting what each read returns. */
class MemoryConversations implements ConversationStore {
  turns: ConversationTurn[] = [];
  summary: ConversationSummary | undefined;
  lastRead = 0;
  async get() {
    return undefined;
  }
  async history(): Promise<ConversationHistory> {
    const after = this.summary?.covers_through ?? "";
    const turns = this.turns.filter((t) => t.request_id > after);
    this.lastRead = turns.length;
    return { turns, ...(this.summary ? { summary: this.summary } : {}) };
  }
  async appendTurn(_t: string, _c: string, turn: ConversationTurn) {
    if (this.turns.some((t) => t.request_id === turn.request_id)) return false;
    this.turns.push({ ...turn, tokens: turnTokens(turn) });
    this.turns.sort((a, b) => (a.request_id < b.request_id ? -1 : 1));
    return true;
  }
  async setSummary(_t: string, _c: string, summary: ConversationSummary) {
    if (this.summary && this.summary.covers_through >= summary.covers_through) return false;
    this.summary = summary;
    return true;
  }
}

class MemoryRequests {
  records: StoredRequest[] = [];
  lastRead = 0;
  async listConversation(_key: string, range: { after?: string } = {}) {
    const out = this.records.filter((r) => !range.after || r.id > range.after);
    this.lastRead = out.length;
    return out;
  }
}

const MAX_MODEL_LEN = 4096;
const RESERVE = 512;

function setup(options: { summarize?: ContextDeps["summarize"]; maxTurns?: number } = {}) {
  const conversations = new MemoryConversations();
  const requests = new MemoryRequests();
  const transcripts: number[] = [];
  const deps: ContextDeps = {
    requests,
    conversations,
    summarize:
      options.summarize ??
      (async (transcript: ChatMessage[]) => {
        transcripts.push(countChatTokens(transcript));
        return `A summary of ${transcript.length} messages, the newest starting: ${transcript.at(-1)?.content.slice(0, 40)}`;
      }),
    historyTokenBudget: 2048,
    maxModelLen: MAX_MODEL_LEN,
    summaryReserveTokens: RESERVE,
    ...(options.maxTurns ? { maxTurns: options.maxTurns } : {}),
  };
  const request = (prompt: string): AcceptedRequest => ({
    id: newRequestId(),
    tenant: "acme",
    model: "deepseek-chat",
    prompt,
    max_tokens: 64,
    temperature: 0,
    cache: false,
    conversation_id: "c1",
    prompt_tokens: countPromptTokens({ prompt }),
    created_at: new Date().toISOString(),
    deadline_at: new Date(Date.now() + 900_000).toISOString(),
  });
  /** One turn: assemble, then answer and store it as the pipeline would. */
  const turn = async (prompt: string) => {
    const r = request(prompt);
    const outcome = await assembleContext(deps, r);
    if (outcome.ready === true) {
      const answer = `Answer to: ${prompt.slice(0, 200)}`;
      requests.records.push({
        ...(r as unknown as StoredRequest),
        id: r.id,
        status: "completed",
        request: r,
        result: {
          text: answer,
          finish_reason: "stop",
          usage: { prompt_tokens: 1, completion_tokens: 1 },
          source: "model",
        },
      } as unknown as StoredRequest);
      await conversations.appendTurn("acme", "c1", {
        request_id: r.id,
        messages: turnMessages(r),
        answer,
        created_at: new Date().toISOString(),
      });
    }
    return outcome;
  };
  return { deps, conversations, requests, transcripts, turn };
}

const sentence = (i: number) =>
  `Turn ${i}: a statement about the weather, the sea and the mountains, with a number ${i * 7919} to remember. `.repeat(
    8,
  );

describe("assembleContext over a long conversation", () => {
  it("200 turns with one 3.5k-token turn early on: bounded reads, summaries that fit the window, a summary kept", async () => {
    const { turn, conversations, requests, transcripts } = setup();
    const huge = "The committee reviewed every clause of the contract in detail. ".repeat(300); // ~3.5k tokens
    expect(countPromptTokens({ prompt: huge })).toBeGreaterThan(3000);
    const reads: number[] = [];
    for (let i = 1; i <= 200; i++) {
      const outcome = await turn(i === 2 ? huge : sentence(i));
      expect(outcome.ready).toBe(true);
      if (outcome.ready !== true) continue;
      // Every context fits: its history within the budget the turn leaves.
      expect(outcome.historyTokens).toBeLessThanOrEqual(2048);
      if (i > 2) expect(countChatTokens(outcome.context!)).toBeLessThan(MAX_MODEL_LEN - 64);
      reads.push(conversations.lastRead + requests.lastRead);
    }
    // Each summarizer call fits the model's window.
    expect(transcripts.length).toBeGreaterThan(5);
    for (const n of transcripts) expect(n).toBeLessThanOrEqual(MAX_MODEL_LEN - RESERVE + 64);
    // Reads stay flat: turn 200 reads no more than the busiest of the first turns.
    expect(Math.max(...reads.slice(150))).toBeLessThanOrEqual(Math.max(...reads.slice(0, 50)));
    expect(conversations.summary?.summary).toMatch(/summary/);
    expect(conversations.summary?.turns).toBeGreaterThan(150);
  });

  it("refuses turns past the conversation's cap", async () => {
    const { turn } = setup({ maxTurns: 3 });
    for (let i = 0; i < 3; i++) expect((await turn(`q${i}`)).ready).toBe(true);
    const refused = await turn("one too many");
    expect(refused).toEqual({ ready: "refused", reason: expect.stringMatching(/limit of 3 turns/) });
  });

  it("drops whole oldest turns when summarising fails, and the context still fits", async () => {
    const { turn } = setup({
      summarize: async () => {
        throw new Error("model down");
      },
    });
    let last: Awaited<ReturnType<typeof turn>> | undefined;
    for (let i = 1; i <= 20; i++) last = await turn(sentence(i));
    expect(last?.ready).toBe(true);
    if (last?.ready !== true) return;
    expect(last.truncated).toBe(true);
    expect(last.summarized).toBe(false);
    expect(last.historyTokens).toBeLessThanOrEqual(2048);
    // Whole turns: the context starts with a user message, never an orphan answer.
    expect(last.context?.[0]?.role).toBe("user");
  });
});
