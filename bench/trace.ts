/**
 * Trace timestamps the SQS emulator records: fauxqs message spies note every
 * SendMessage ("published") and DeleteMessage ("consumed") with the time, and
 * every deepqueue message is a CloudEvent whose `subject` is the request id.
 */
/** request id → queue name → first SendMessage time, from the SQS emulator's spy. */
export function sendTimes(
  messages: ReadonlyArray<{
    service: string;
    status?: string;
    queueName?: string;
    body?: string;
    timestamp: number;
  }>,
): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const m of messages) {
    if (m.service !== "sqs" || m.status !== "published" || !m.queueName || !m.body) continue;
    let subject: string | undefined;
    try {
      subject = (JSON.parse(m.body) as { subject?: string }).subject;
    } catch {
      continue; // not a CloudEvent: not ours
    }
    if (!subject) continue;
    const byQueue = out.get(subject) ?? new Map<string, number>();
    if (!byQueue.has(m.queueName)) byQueue.set(m.queueName, m.timestamp);
    out.set(subject, byQueue);
  }
  return out;
}
