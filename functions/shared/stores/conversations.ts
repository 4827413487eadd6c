import { type DynamoDBDocumentClient, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { ChatMessage, Conversation } from "../../../events/index.ts";
import { conditionalWrite, epochSeconds, isExpired } from "../dynamo.ts";
import { tableName } from "../names.ts";

/** How long a conversation's turns are kept after they were written. */
export const CONVERSATION_RETENTION_SECONDS = 30 * 24 * 3600;

const TURN_PREFIX = "turn#";
const SUMMARY_SK = "summary";

/** One answered turn: what the producer sent for it, and the answer. */
export interface ConversationTurn {
  request_id: string;
  /** The turn's own messages (a prompt becomes one user message). */
  messages: ChatMessage[];
  answer: string;
  created_at: string;
}

export interface ConversationSummary {
  summary: string;
  /** The last request id whose turn the summary covers; later turns are kept verbatim. */
  covers_through: string;
  created_at: string;
}

export interface ConversationHistory {
  /** Every stored turn in arrival order (request ids are time-ordered). */
  turns: ConversationTurn[];
  summary?: ConversationSummary;
}

/**
 * Conversation history: one item per answered turn (sort key `turn#<request id>`,
 * so turns sort by arrival) and one summary item standing for older turns.
 */
export interface ConversationStore {
  /** The API's view (docs/api.md#get-v1conversationsid): the summary and the turns it does not cover. */
  get(tenant: string, conversationId: string): Promise<Conversation | undefined>;
  history(tenant: string, conversationId: string): Promise<ConversationHistory>;
  /** Stores an answered turn; repeating it for the same request id changes nothing. Returns false on a repeat. */
  appendTurn(tenant: string, conversationId: string, turn: ConversationTurn): Promise<boolean>;
  /** Stores a summary unless one already covers as far or further. */
  setSummary(tenant: string, conversationId: string, summary: ConversationSummary): Promise<boolean>;
}

/** Messages as the model sees them: the summary (as a system message), then uncovered turns. */
export function historyMessages(history: ConversationHistory): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (history.summary) {
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
export function uncoveredTurns(history: ConversationHistory): ConversationTurn[] {
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
    const turns: ConversationTurn[] = [];
    let summary: ConversationSummary | undefined;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": key(tenant, conversationId) },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        if (isExpired(item.expires_at)) continue;
        if (item.sk === SUMMARY_SK) {
          summary = {
            summary: item.summary as string,
            covers_through: item.covers_through as string,
            created_at: item.created_at as string,
          };
        } else if (typeof item.sk === "string" && item.sk.startsWith(TURN_PREFIX)) {
          turns.push({
            request_id: item.request_id as string,
            messages: item.messages as ChatMessage[],
            answer: item.answer as string,
            created_at: item.created_at as string,
          });
        }
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
      ...(history.summary ? { summary: history.summary.summary } : {}),
    };
  }

  async appendTurn(tenant: string, conversationId: string, turn: ConversationTurn): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: key(tenant, conversationId),
            sk: `${TURN_PREFIX}${turn.request_id}`,
            ...turn,
            expires_at: epochSeconds() + CONVERSATION_RETENTION_SECONDS,
          },
          ConditionExpression: "attribute_not_exists(sk)",
        }),
      ),
    );
  }

  async setSummary(tenant: string, conversationId: string, summary: ConversationSummary): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: key(tenant, conversationId),
            sk: SUMMARY_SK,
            ...summary,
            expires_at: epochSeconds() + CONVERSATION_RETENTION_SECONDS,
          },
          ConditionExpression: "attribute_not_exists(sk) OR covers_through < :through",
          ExpressionAttributeValues: { ":through": summary.covers_through },
        }),
      ),
    );
  }
}

function key(tenant: string, conversationId: string): string {
  return `${tenant}#${conversationId}`;
}
