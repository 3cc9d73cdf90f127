/**
 * Whether a string is its own JSON string literal's text: `JSON.stringify`
 * would only add the quotes, as there is no `"`, `\`, control character or
 * lone surrogate in it. A large tool result almost always is, and then
 * neither side has to escape or unescape it.
 *
 * It is told by a WebAssembly SIMD scan of the text's UTF-8 bytes, 16 at a
 * time: 16 MiB of text in about 2 ms, encoding included. Before it, the
 * sender escaped every slice with `JSON.stringify` (9 ms per 16 MiB, and as
 * much garbage as text) and the receiver tested a regular expression (5 ms).
 * Where WebAssembly SIMD is missing or refused (a page whose Content Security
 * Policy does not allow `wasm-unsafe-eval`), {@linkcode plainInJson} answers
 * `undefined` and its callers do as before.
 *
 * @module
 */

/**
 * The scan, in WebAssembly's text format: `plain(length)` is 1 when none of
 * the first `length` bytes of memory is below 0x20, a quote (0x22) or a
 * backslash (0x5c), else 0. It reads whole 16-byte blocks: the caller fills
 * what the last block holds beyond `length` with spaces.
 */
export const SCAN_WAT = `(module
  (memory (export "memory") 4)
  (func (export "plain") (param $length i32) (result i32)
    (local $at i32)
    (local $block v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $length)))
        (local.set $block (v128.load (local.get $at)))
        (if (v128.any_true
              (v128.or
                (v128.or
                  (i8x16.lt_u (local.get $block) (v128.const i8x16 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32))
                  (i8x16.eq (local.get $block) (v128.const i8x16 34 34 34 34 34 34 34 34 34 34 34 34 34 34 34 34)))
                (i8x16.eq (local.get $block) (v128.const i8x16 92 92 92 92 92 92 92 92 92 92 92 92 92 92 92 92))))
          (then (return (i32.const 0))))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (br $next)))
    (i32.const 1)))
`;

/** {@linkcode SCAN_WAT} compiled by wabt 1.0.39, in base64 (a test compiles it again and compares). */
export const SCAN_WASM =
  "AGFzbQEAAAABBgFgAX8BfwMCAQAFAwEABAcSAgZtZW1vcnkCAAVwbGFpbgAACnYBdAIBfwF7AkADQCABIABPDQEgAf0ABAAhAiAC/QwgICAgICAgICAgICAgICAg/SYgAv0MIiIiIiIiIiIiIiIiIiIiIv0j/VAgAv0MXFxcXFxcXFxcXFxcXFxcXP0j/VD9UwRAQQAPCyABQRBqIQEMAAsLQQEL";

/**
 * The longest text told, in UTF-16 code units: at three UTF-8 bytes each, and
 * a block of padding, it fits the scan's 256 KiB of memory.
 */
export const PLAIN_SCAN_LIMIT = 65_536;

/** Tells whether `text` is its own JSON literal's text, or `undefined` when it cannot. */
export type PlainScan = (text: string) => boolean | undefined;

const PAD = 16;
const SPACE = 0x20;

/**
 * Makes the scan with `wasm` (the global `WebAssembly` by default; `null` for
 * none), or gives `undefined` where it cannot: no WebAssembly, no SIMD,
 * compiling refused, or no `String.prototype.isWellFormed` (which finds lone
 * surrogates).
 *
 * @param wasm The WebAssembly namespace to compile with, or `null`.
 * @returns The scan, or `undefined`.
 */
export function createPlainScan(
  wasm: typeof WebAssembly | null = globalThis.WebAssembly ?? null,
): PlainScan | undefined {
  if (typeof String.prototype.isWellFormed !== "function") return undefined;
  let plain: (length: number) => number;
  let bytes: Uint8Array;
  try {
    const binary = Uint8Array.from(atob(SCAN_WASM), (char) => char.charCodeAt(0));
    if (!wasm?.validate(binary)) return undefined;
    const { exports } = new wasm.Instance(new wasm.Module(binary));
    plain = exports.plain as (length: number) => number;
    bytes = new Uint8Array((exports.memory as WebAssembly.Memory).buffer);
  } catch {
    return undefined;
  }
  const room = bytes.subarray(0, bytes.byteLength - PAD);
  const encoder = new TextEncoder();
  return (text) => {
    if (text.length > PLAIN_SCAN_LIMIT) return undefined;
    // TextEncoder would write a lone surrogate as U+FFFD; JSON.stringify escapes it.
    if (!text.isWellFormed()) return false;
    const { written } = encoder.encodeInto(text, room);
    bytes.fill(SPACE, written, written + PAD);
    return plain(written) === 1;
  };
}

/** The process's scan: `undefined` until first used, `null` where there is none. */
let scan: PlainScan | null | undefined;

/**
 * Whether `text` is its own JSON string literal's text (`JSON.stringify(text)`
 * is `text` in quotes), or `undefined` where that cannot be told quickly: no
 * WebAssembly SIMD here, or a text over {@linkcode PLAIN_SCAN_LIMIT}.
 *
 * @param text Any string.
 * @returns Whether it needs no escaping, if known.
 */
export function plainInJson(text: string): boolean | undefined {
  if (scan === undefined) scan = createPlainScan() ?? null;
  return scan === null ? undefined : scan(text);
}
