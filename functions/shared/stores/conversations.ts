import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { ChatMessage, Conversation } from "../../../events/index.ts";
import { conditionalWrite, epochSeconds, isExpired } from "../dynamo.ts";
import { tableName } from "../names.ts";
import { countChatTokens } from "../tokenizer.ts";

/** How long a conversation's turns are kept after they were written. */
const CONVERSATION_RETENTION_SECONDS = 30 * 24 * 3600;

const TURN_PREFIX = "turn#";
const SUMMARY_SK = "summary";

/** One answered turn: what the producer sent for it, and the answer. */
export interface ConversationTurn {
  request_id: string;
  /** The turn's own messages (a prompt becomes one user message). */
  messages: ChatMessage[];
  answer: string;
  created_at: string;
  /**
   * The turn's tokens (its messages and answer, chat template included), counted
   * once when it is appended so that assembling a context never re-tokenizes
   * history. Absent on turns stored before it existed.
   */
  tokens?: number;
}

export interface ConversationSummary {
  /** May be empty: older turns were dropped (truncated) without a summary. */
  summary: string;
  /** The last request id whose turn the summary covers; later turns are kept verbatim. */
  covers_through: string;
  created_at: string;
  /** How many turns the summary stands for, in total (for the per-conversation turn cap). */
  turns?: number;
  /** The summary's own tokens. */
  tokens?: number;
}

export interface ConversationHistory {
  /**
   * The turns after the summary (all of them when there is none), in arrival
   * order (request ids are time-ordered): what a context needs, never the
   * turns a summary already stands for.
   */
  turns: ConversationTurn[];
  summary?: ConversationSummary;
}

/** A turn's tokens: stored at append, counted for older items. */
export function turnTokens(turn: ConversationTurn): number {
  return turn.tokens ?? countChatTokens([...turn.messages, { role: "assistant", content: turn.answer }]);
}

/**
 * Conversation history: one item per answered turn (sort key `turn#<request id>`,
 * so turns sort by arrival) and one summary item standing for older turns.
 */
export interface ConversationStore {
  /** The API's view (docs/api.md#get-v1conversationsid): the summary and the turns it does not cover. */
  get(tenant: string, conversationId: string): Promise<Conversation | undefined>;
  /** The summary and the turns after it (two reads bounded by what a context needs). */
  history(tenant: string, conversationId: string): Promise<ConversationHistory>;
  /**
   * Stores an answered turn (its `tokens` counted when absent); repeating it for
   * the same request id changes nothing. Returns false on a repeat.
   */
  appendTurn(tenant: string, conversationId: string, turn: ConversationTurn): Promise<boolean>;
  /** Stores a summary unless one already covers as far or further. */
  setSummary(tenant: string, conversationId: string, summary: ConversationSummary): Promise<boolean>;
}

/** Messages as the model sees them: the summary (as a system message), then uncovered turns. */
export function historyMessages(history: ConversationHistory): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (history.summary?.summary) {
    messages.push({
      role: "system",
      content: `Summary of the earlier conversation: ${history.summary.summary}`,
    });
  }
  for (const turn of uncoveredTurns(history)) {
    messages.push(...turn.messages, { role: "assistant", content: turn.answer });
  }
  return messages;
}

/** Turns after the summary's last covered request. */
function uncoveredTurns(history: ConversationHistory): ConversationTurn[] {
  const through = history.summary?.covers_through;
  return through ? history.turns.filter((t) => t.request_id > through) : history.turns;
}

/** @example const conversations = new DynamoConversationStore(ddb, "deepqueue"); */
export class DynamoConversationStore implements ConversationStore {
  readonly table: string;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
  ) {
    this.table = tableName(prefix, "conversations");
  }

  async history(tenant: string, conversationId: string): Promise<ConversationHistory> {
    const pk = key(tenant, conversationId);
    const got = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: { pk, sk: SUMMARY_SK }, ConsistentRead: true }),
    );
    const item = got.Item && !isExpired(got.Item.expires_at) ? got.Item : undefined;
    const summary: ConversationSummary | undefined = item
      ? {
          summary: item.summary as string,
          covers_through: item.covers_through as string,
          created_at: item.created_at as string,
          ...(typeof item.turns === "number" ? { turns: item.turns } : {}),
          ...(typeof item.tokens === "number" ? { tokens: item.tokens } : {}),
        }
      : undefined;
    // Only the turns after the summary: sort keys are `turn#<request id>`, ids time-ordered.
    const after = summary ? `${TURN_PREFIX}${summary.covers_through}` : TURN_PREFIX;
    const turns: ConversationTurn[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          // "summary" sorts before "turn#": everything after `after` is a later turn.
          KeyConditionExpression: "pk = :pk AND sk > :after",
          ExpressionAttributeValues: { ":pk": pk, ":after": after },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const turn of out.Items ?? []) {
        if (isExpired(turn.expires_at)) continue;
        turns.push({
          request_id: turn.request_id as string,
          messages: turn.messages as ChatMessage[],
          answer: turn.answer as string,
          created_at: turn.created_at as string,
          ...(typeof turn.tokens === "number" ? { tokens: turn.tokens } : {}),
        });
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return { turns, ...(summary ? { summary } : {}) };
  }

  async get(tenant: string, conversationId: string): Promise<Conversation | undefined> {
    const history = await this.history(tenant, conversationId);
    if (history.turns.length === 0 && !history.summary) return undefined;
    const messages: Conversation["messages"] = [];
    for (const turn of uncoveredTurns(history)) {
      for (const m of turn.messages)
        messages.push({ role: m.role, content: m.content, request_id: turn.request_id });
      messages.push({ role: "assistant", content: turn.answer, request_id: turn.request_id });
    }
    return {
      id: conversationId,
      messages,
      ...(history.summary?.summary ? { summary: history.summary.summary } : {}),
    };
  }

  async appendTurn(tenant: string, conversationId: string, turn: ConversationTurn): Promise<boolean> {
    return this.#put(
      {
        pk: key(tenant, conversationId),
        sk: `${TURN_PREFIX}${turn.request_id}`,
        ...turn,
        tokens: turnTokens(turn),
      },
      "attribute_not_exists(sk)",
    );
  }

  async setSummary(tenant: string, conversationId: string, summary: ConversationSummary): Promise<boolean> {
    return this.#put(
      { pk: key(tenant, conversationId), sk: SUMMARY_SK, ...summary },
      "attribute_not_exists(sk) OR covers_through < :through",
      { ":through": summary.covers_through },
    );
  }

  /** Puts an item of the conversation (with its expiry) when `condition` holds; false when it did not. */
  #put(item: Record<string, unknown>, condition: string, values?: Record<string, unknown>): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...item, expires_at: epochSeconds() + CONVERSATION_RETENTION_SECONDS },
          ConditionExpression: condition,
          // The SDK leaves an undefined field out of the request.
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }
}

function key(tenant: string, conversationId: string): string {
  return `${tenant}#${conversationId}`;
}
