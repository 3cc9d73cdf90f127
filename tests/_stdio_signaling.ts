/**
 * A signalling channel over newline-delimited JSON on a pair of byte streams:
 * what a parent and a child process already share (stdin and stdout). It also
 * shows how little a `Signaling` takes.
 */
import type { Signaling, SignalingMessage } from "../mod.ts";

export class StreamSignaling implements Signaling {
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #readable: ReadableStream<Uint8Array>;
  #closed = false;

  constructor(readable: ReadableStream<Uint8Array>, writable: WritableStream<Uint8Array>) {
    this.#readable = readable;
    this.#writer = writable.getWriter();
  }

  start(): Promise<void> {
    (async () => {
      let buffer = "";
      const decoder = new TextDecoder();
      for await (const chunk of this.#readable) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) this.onmessage?.(JSON.parse(line));
        }
      }
    })().catch(() => {}).finally(() => this.close());
    return Promise.resolve();
  }

  async send(message: SignalingMessage): Promise<void> {
    if (this.#closed) throw new Error("Cannot send signalling message as the stream is closed");
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.close().catch(() => {});
    this.onclose?.();
  }
}
