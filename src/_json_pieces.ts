/**
 * JSON text in pieces, both ways, so that a message holding a large string
 * (a tool result of a file, a screenshot in base64) is never serialised,
 * decoded or parsed in one pass that holds the event loop for the whole
 * message: the work is spread over the frames and overlaps the wire.
 *
 * - {@linkcode jsonPieces} gives the pieces whose concatenation is
 *   `JSON.stringify(value)`; a string of {@linkcode LARGE_STRING} characters or
 *   more comes in slices, each escaped only when it is reached.
 * - {@linkcode JsonAssembler} takes the text of one JSON value in pieces cut
 *   anywhere and gives the value; a string literal of
 *   {@linkcode LARGE_STRING} characters or more is parsed slice by slice as
 *   its text arrives, into a string of its own, and never as part of one
 *   whole-message text.
 *
 * @module
 */
import { plainInJson, type PlainScan } from "./_plain_json.ts";
import { isHighSurrogate } from "./_utf8.ts";

/**
 * The length from which a string is handled in slices, and the length of a
 * slice: 64 Ki characters take well under a millisecond to escape or parse,
 * and a message without such a string goes the plain `JSON.stringify` /
 * `JSON.parse` way.
 */
export const LARGE_STRING = 65_536;

/**
 * A character that makes a literal's text differ from its value (an escape)
 * or invalid (a control character): a slice without one is its own value,
 * kept as is. Tested where {@linkcode plainInJson} cannot tell (5 ms per
 * 16 MiB in 32 KiB slices; parsing every slice instead took 4–437 ms).
 */
// deno-lint-ignore no-control-regex -- control characters are what JSON refuses raw
const ESCAPE_OR_CONTROL = /[\\\u0000-\u001f]/;

/** The average piece length under which a literal's pieces are joined before they are parsed. */
const SMALL_PIECE = 1024;

/** How many values {@linkcode jsonPieces} looks at for a large string before it gives up. */
const SCAN_LIMIT = 256;

/**
 * The text of `JSON.stringify(value)` in pieces: one piece for a value
 * without a string of {@linkcode LARGE_STRING} characters among its first
 * values, else the text around each large string and each string in slices.
 * The text around the strings is made at once, so a value that cannot be
 * serialised throws here; the slices are made as they are read.
 *
 * @param value The value to serialise.
 * @param plain Tells a slice that needs no escaping (tests give another).
 * @throws {TypeError} As `JSON.stringify` does (a cycle, a BigInt).
 */
export function jsonPieces(value: unknown, plain: PlainScan = plainInJson): Iterable<string> {
  if (!hasLargeString(value)) return [JSON.stringify(value)];
  const large: string[] = [];
  const tag = `\u0000mcp-webrtc-${crypto.randomUUID()}:`;
  const skeleton = JSON.stringify(value, (_key, item) => {
    if (typeof item !== "string" || item.length < LARGE_STRING) return item;
    large.push(item);
    return `${tag}${large.length - 1}`;
  });
  // Where each large string's quoted placeholder sits in the skeleton.
  const cuts: number[] = [];
  for (let i = 0; i < large.length; i++) {
    const placeholder = JSON.stringify(`${tag}${i}`);
    const at = skeleton.indexOf(placeholder, cuts.at(-1) ?? 0);
    // A key of 64 Ki characters is not replaced; nothing else can hold the tag.
    if (at < 0) return [JSON.stringify(value)];
    cuts.push(at, at + placeholder.length);
  }
  return piecesAround(skeleton, cuts, large, plain);
}

function* piecesAround(
  skeleton: string,
  cuts: number[],
  large: string[],
  plain: PlainScan,
): Generator<string> {
  let from = 0;
  for (let i = 0; i < large.length; i++) {
    yield `${skeleton.slice(from, cuts[2 * i])}"`;
    const text = large[i];
    for (let start = 0; start < text.length;) {
      let end = Math.min(text.length, start + LARGE_STRING);
      // Never part a surrogate pair: its halves would be escaped one by one.
      if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
      const slice = text.slice(start, end);
      // Escaped only if it has to be: JSON.stringify copies the slice even
      // when it needs no escape (9 ms per 16 MiB, where the scan takes 2).
      yield plain(slice) ? slice : JSON.stringify(slice).slice(1, -1);
      start = end;
    }
    yield '"';
    from = cuts[2 * i + 1];
  }
  yield skeleton.slice(from);
}

/** Whether a large string is among the first {@linkcode SCAN_LIMIT} values, breadth first. */
function hasLargeString(value: unknown): boolean {
  const queue = [value];
  for (let i = 0; i < queue.length && i < SCAN_LIMIT; i++) {
    const item = queue[i];
    if (typeof item === "string") {
      if (item.length >= LARGE_STRING) return true;
    } else if (Array.isArray(item)) {
      for (const element of item) queue.push(element);
    } else if (item !== null && typeof item === "object") {
      for (const key in item) queue.push((item as Record<string, unknown>)[key]);
    }
  }
  return false;
}

/**
 * Parses one JSON value from text pieces cut anywhere. Outside large string
 * literals the text is kept and parsed at the end (it is small); a literal
 * that reaches {@linkcode LARGE_STRING} characters is parsed as its slices
 * arrive and joined by concatenation, never copied whole.
 */
export class JsonAssembler {
  /** The text outside large literals, each of which is a placeholder here. */
  #skeleton = "";
  /** Whether the text so far ends inside a string literal. */
  #inString = false;
  /** The current literal's text not parsed yet, without its opening quote, in pieces. */
  #raw: string[] = [];
  #rawLength = 0;
  /** How many backslashes end the current literal's text so far. */
  #backslashes = 0;
  /** The current literal's value parsed so far, once it is large. */
  #value = "";
  #large = false;
  readonly #strings: string[] = [];
  readonly #tag = `\u0000mcp-webrtc-${crypto.randomUUID()}:`;
  readonly #plain: PlainScan;

  /** @param plain Tells a slice that is its own value (tests give another). */
  constructor(plain: PlainScan = plainInJson) {
    this.#plain = plain;
  }

  /** Takes the next piece of the text; each piece is scanned once. */
  push(text: string): void {
    let rest = text;
    while (rest.length > 0) {
      if (!this.#inString) {
        const quote = rest.indexOf('"');
        if (quote < 0) {
          this.#skeleton += rest;
          return;
        }
        this.#skeleton += rest.slice(0, quote);
        this.#inString = true;
        rest = rest.slice(quote + 1);
        continue;
      }
      const end = this.#closingQuote(rest);
      if (end < 0) {
        this.#appendRaw(rest);
        if (this.#rawLength >= LARGE_STRING) this.#parseSlice(false);
        return;
      }
      this.#appendRaw(rest.slice(0, end));
      rest = rest.slice(end + 1);
      this.#endString();
    }
  }

  /**
   * The value of the whole text.
   *
   * @throws {SyntaxError} If the text is not one JSON value.
   */
  end(): unknown {
    if (this.#inString) throw new SyntaxError("Unterminated string in JSON");
    if (this.#strings.length === 0) return JSON.parse(this.#skeleton);
    const strings = this.#strings;
    const tag = this.#tag;
    let used = 0;
    const value = JSON.parse(this.#skeleton, (_key, item) => {
      if (typeof item !== "string" || !item.startsWith(tag)) return item;
      used++;
      return strings[Number(item.slice(tag.length))];
    });
    if (used === strings.length) return value;
    // A large literal was an object key, which a reviver cannot replace.
    return JSON.parse(
      this.#skeleton.replace(
        new RegExp(`${JSON.stringify(tag).slice(1, -1).replaceAll("\\", "\\\\")}(\\d+)`, "g"),
        (_match, index) => JSON.stringify(strings[Number(index)]).slice(1, -1),
      ),
    );
  }

  /** The index in `text`, the literal's next piece, of the quote that ends it, or -1. */
  #closingQuote(text: string): number {
    let from = 0;
    while (true) {
      const quote = text.indexOf('"', from);
      if (quote < 0) return -1;
      let start = quote;
      while (start > 0 && text.charCodeAt(start - 1) === 0x5c) start--;
      const backslashes = quote - start + (start === 0 ? this.#backslashes : 0);
      if (backslashes % 2 === 0) return quote;
      from = quote + 1;
    }
  }

  #appendRaw(text: string): void {
    if (text.length === 0) return;
    this.#raw.push(text);
    this.#rawLength += text.length;
    let start = text.length;
    while (start > 0 && text.charCodeAt(start - 1) === 0x5c) start--;
    this.#backslashes = text.length - start + (start === 0 ? this.#backslashes : 0);
  }

  /**
   * Parses the literal's text so far into `#value`: all of it once the
   * literal has ended, else up to a cut that parts no escape sequence,
   * keeping the rest for the next piece. Pieces of a sensible size are
   * parsed one by one (no copy of the text into one string; measured: 16 MiB
   * in 32 KiB pieces, 6 ms instead of 22 ms); many small ones are joined first.
   */
  #parseSlice(ended: boolean): void {
    const raw = this.#raw.length > 1 && this.#rawLength < SMALL_PIECE * this.#raw.length
      ? [this.#raw.join("")]
      : this.#raw;
    let rest = "";
    for (let i = 0; i < raw.length; i++) {
      const text = rest.length > 0 ? rest + raw[i] : raw[i];
      const cut = ended && i === raw.length - 1 ? text.length : escapeBoundary(text);
      if (cut > 0) {
        const slice = cut === text.length ? text : text.slice(0, cut);
        const plain = this.#plain(slice) ?? !ESCAPE_OR_CONTROL.test(slice);
        this.#value += plain ? slice : JSON.parse(`"${slice}"`);
      }
      rest = text.slice(cut);
    }
    this.#raw = rest.length > 0 ? [rest] : [];
    this.#rawLength = rest.length;
    this.#large = true;
  }

  #endString(): void {
    if (!this.#large && this.#rawLength < LARGE_STRING) {
      this.#skeleton += `"${this.#raw.join("")}"`;
    } else {
      this.#parseSlice(true);
      this.#strings.push(this.#value);
      this.#skeleton += JSON.stringify(`${this.#tag}${this.#strings.length - 1}`);
    }
    this.#inString = false;
    this.#raw = [];
    this.#rawLength = 0;
    this.#backslashes = 0;
    this.#value = "";
    this.#large = false;
  }
}

/**
 * Where a literal's text, which begins between two escape sequences, may be
 * cut so that none is parted: before the last backslash among the last 6
 * characters (an escape sequence is `\uXXXX` at most) when that backslash
 * begins a sequence, else at the end. In a run of backslashes that begins
 * the text or follows another character, they pair up from its start, so
 * the last one begins a sequence when the run's length is odd. (Cutting
 * before the whole run instead kept a literal of backslashes unparsed to
 * its end, scanned again with every piece.)
 */
function escapeBoundary(text: string): number {
  for (let i = text.length - 1; i >= 0 && i >= text.length - 6; i--) {
    if (text.charCodeAt(i) !== 0x5c) continue;
    let start = i;
    while (start > 0 && text.charCodeAt(start - 1) === 0x5c) start--;
    return (i - start) % 2 === 0 ? i : text.length;
  }
  return text.length;
}
