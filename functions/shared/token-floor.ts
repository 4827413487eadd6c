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
 * a digit piece holds at most 3 digits, a CJK run is a piece of its own
 * (at most 16 CJK characters a token). Other non-ASCII characters are treated as
 * possibly joining their neighbours, so the bound never over-counts.
 * `token-floor.test.ts` checks `tokenFloor(text) <= countTokens(text)` on
 * random text, including every special token.
 */

/** Most ASCII letters in one vocabulary token ("M" × 64). */
const MAX_LETTERS_PER_TOKEN = 64;
/** Most digits in one token: digits are split in groups of up to three. */
const MAX_DIGITS_PER_TOKEN = 3;
/** Longest token in bytes (byte-level BPE): a floor for text of any kind. */
const MAX_BYTES_PER_TOKEN = 128;

/** Most CJK characters (the pre-tokenizer's `[一-龥぀-ゟ゠-ヿ]` class) in one token. */
const MAX_CJK_PER_TOKEN = 16;

const NONE = 0;
const LETTER = 1;
const DIGIT = 2;
const CJK = 3;

/** Tokens at least `run` characters of `kind` take. */
function runTokens(kind: number, run: number): number {
  if (kind === LETTER) return Math.ceil(run / MAX_LETTERS_PER_TOKEN);
  if (kind === DIGIT) return Math.ceil(run / MAX_DIGITS_PER_TOKEN);
  if (kind === CJK) return Math.ceil(run / MAX_CJK_PER_TOKEN);
  return 0;
}

/**
 * @example
 * tokenFloor("the quick brown fox"); // 4 (countTokens gives 4)
 * tokenFloor("x".repeat(200_000));   // 3125: more than a 4096-token window after max_tokens? refuse now
 */
export function tokenFloor(text: string): number {
  const scan = new FloorScan();
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) scan.ascii(c);
    else scan.other(c);
  }
  return scan.total();
}

/** The pre-tokenizer's pieces, counted one UTF-16 code unit at a time. */
class FloorScan {
  #pieces = 0;
  #bytes = 0;
  /** The run being counted: its kind and length. */
  #kind = NONE;
  #run = 0;
  /** A non-ASCII character was seen since the last letter or digit. */
  #nonAscii = false;
  /** Letters and digits met across a non-ASCII character: one run up to the next ASCII separator. */
  #mixed = false;

  /** Ends the run being counted: its tokens join the pieces. */
  #close(): void {
    this.#pieces += runTokens(this.#kind, this.#run);
    this.#kind = NONE;
    this.#run = 0;
    this.#mixed = false;
  }

  ascii(c: number): void {
    this.#bytes += 1;
    const k = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) ? LETTER : c >= 48 && c <= 57 ? DIGIT : NONE;
    if (k === NONE) {
      // ASCII space, punctuation, control: always a piece boundary between letters or digits.
      this.#close();
      this.#nonAscii = false;
      return;
    }
    const kind = this.#kind;
    if (kind === CJK || (kind !== NONE && kind !== k && !this.#nonAscii && !this.#mixed)) {
      // A letter directly after a digit (or the reverse) starts a new piece; CJK runs are pieces of their own.
      this.#close();
    }
    if (this.#kind === NONE) this.#kind = k;
    else if (this.#kind !== k) {
      // Across a non-ASCII character a letter and a digit may share a token (a special token
      // such as "<｜place▁holder▁no▁0｜>"): the run goes on, counted as letters (the lower count).
      this.#kind = LETTER;
      this.#mixed = true;
    }
    this.#nonAscii = false;
    this.#run += 1;
  }

  other(c: number): void {
    // UTF-8 bytes: a surrogate pair is 4 (2 + 2), the rest of the BMP 2 or 3.
    this.#bytes += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
    const cjk = (c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x3040 && c <= 0x30ff);
    if (cjk) {
      // The pre-tokenizer isolates CJK runs: they end any other run and are pieces of their own.
      if (this.#kind !== CJK) {
        this.#close();
        this.#kind = CJK;
      }
      this.#run += 1;
      return;
    }
    if (this.#kind === CJK) {
      this.#pieces += runTokens(this.#kind, this.#run);
      this.#kind = NONE;
      this.#run = 0;
    }
    // Other non-ASCII: may join what is on either side (a letter with a mark, "no▁0" in a special token).
    this.#nonAscii = true;
  }

  total(): number {
    const pieces = this.#pieces + runTokens(this.#kind, this.#run);
    return Math.max(pieces, Math.ceil(this.#bytes / MAX_BYTES_PER_TOKEN));
  }
}
