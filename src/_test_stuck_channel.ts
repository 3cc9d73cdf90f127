/**
 * A data channel for tests whose other peer never reads: whatever is sent
 * stays in its buffer, and `deliver()` hands this end a message as if the
 * other peer had sent it.
 *
 * @module
 */

/** One end of a channel whose other peer never reads. */
export class StuckChannel extends EventTarget {
  readonly label = "mcp";
  readonly protocol = "";
  readyState: string = "open";
  binaryType = "arraybuffer";
  bufferedAmountLowThreshold = 0;
  bufferedAmount = 0;

  /** Keeps `data` in the buffer, for ever. */
  send(data: string | Uint8Array): void {
    this.bufferedAmount += typeof data === "string" ? data.length : data.byteLength;
  }

  /** Closes, and says so. */
  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.bufferedAmount = 0;
    this.dispatchEvent(new Event("close"));
  }

  /** Hands this end `text`, as a message from the other peer. */
  deliver(text: string): void {
    this.dispatchEvent(new MessageEvent("message", { data: text }));
  }
}
