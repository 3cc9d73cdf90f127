/**
 * A worker that samples the process's resident set size every 10 ms, so the
 * samples keep coming while the main thread is busy parsing a large message.
 *
 * Messages in: `"start"` (forget the peak), `"stop"` (reply with the peak in
 * bytes). The RSS is the whole process's, whichever thread reads it.
 *
 * @module
 */

/// <reference lib="deno.worker" />

const INTERVAL_MS = 10;

let peak = 0;
let timer: ReturnType<typeof setInterval> | undefined;

function sample(): void {
  const rss = Deno.memoryUsage().rss;
  if (rss > peak) peak = rss;
}

self.onmessage = (event: MessageEvent<"start" | "stop">) => {
  if (event.data === "start") {
    peak = 0;
    sample();
    clearInterval(timer);
    timer = setInterval(sample, INTERVAL_MS);
  } else {
    clearInterval(timer);
    timer = undefined;
    sample();
    self.postMessage(peak);
  }
};
