/**
 * A cheap lower bound on DeepSeek-V3's token count, for refusing a prompt
 * that cannot fit the context window before paying for the real count (a
 * 250 KiB prompt costs seconds of CPU to tokenize, this costs ~1 ms).
 *
 * Sound by construction of the tokenizer's pre-tokenizer (tokenizer.json):
 * the text is split into pieces (`\p{N}{1,3}`, CJK runs, then a GPT-style
 * regex) and BPE never merges across pieces, so every piece is at least one
 * token. Two ASCII letters or digits separated by an ASCII character that is
 * neither always land in different pieces, a letter next to a digit too, and
 * a digit piece holds at most 3 digits. Non-ASCII characters are treated as
 * possibly joining their neighbours, so the bound never over-counts.
 * `token-floor.test.ts` checks `tokenFloor(text) <= countTokens(text)` on
 * random text, including every special token.
 */

/** Most ASCII letters in one vocabulary token ("M" × 64). */
export const MAX_LETTERS_PER_TOKEN = 64;
/** Most digits in one token: digits are split in groups of up to three. */
export const MAX_DIGITS_PER_TOKEN = 3;
/** Longest token in bytes (byte-level BPE): a floor for text of any kind. */
export const MAX_BYTES_PER_TOKEN = 128;

const LETTER = 1;
const DIGIT = 2;
const OTHER = 3;

/**
 * @example
 * tokenFloor("the quick brown fox"); // 4 (countTokens gives 4)
 * tokenFloor("x".repeat(200_000));   // 3125: more than a 4096-token window after max_tokens? refuse now
 */
export function tokenFloor(text: string): number {
  let pieces = 0;
  // The run being counted: its kind and how many ASCII letters/digits it has.
  let kind = 0;
  let run = 0;
  let nonAscii = false;
  // Letters and digits met across a non-ASCII character: one run up to the next ASCII separator.
  let mixed = false;
  const close = () => {
    if (kind === LETTER) pieces += Math.ceil(run / MAX_LETTERS_PER_TOKEN);
    else if (kind === DIGIT) pieces += Math.ceil(run / MAX_DIGITS_PER_TOKEN);
    kind = 0;
    run = 0;
    mixed = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const k =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90)
        ? LETTER
        : c >= 48 && c <= 57
          ? DIGIT
          : c < 128
            ? OTHER
            : 0;
    if (k === 0) {
      // Non-ASCII: may join what is on either side (a letter with a mark, "no▁0" in a special token).
      nonAscii = true;
      continue;
    }
    if (k === OTHER) {
      close();
      nonAscii = false;
      continue;
    }
    // A letter directly after a digit (or the reverse) starts a new piece. Across a
    // non-ASCII character it might not (a special token such as "<｜place▁holder▁no▁0｜>"
    // is one token), so the run goes on, counted as letters (the lower count).
    if (kind !== 0 && kind !== k && !nonAscii && !mixed) close();
    if (kind === 0) kind = k;
    else if (kind !== k) {
      kind = LETTER;
      mixed = true;
    }
    nonAscii = false;
    run += 1;
  }
  close();
  return Math.max(pieces, Math.ceil(Buffer.byteLength(text, "utf8") / MAX_BYTES_PER_TOKEN));
}
