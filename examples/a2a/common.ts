/** What the two processes of the A2A demo share: step logging, arguments, text parts. */
import type { Message, Part } from "@a2a-js/sdk";
import process from "node:process";

/** Reports one step, with optional details. */
export type Log = (step: string, details?: Record<string, unknown>) => void;

/** Wall-clock milliseconds, sub-millisecond, comparable across processes. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A {@linkcode Log} that prints each step with the milliseconds since `t0`
 * (a {@linkcode wallClock} time), so both processes' lines line up.
 */
export function printStep(who: string, t0: number = wallClock()): Log {
  return (step, details) => {
    const at = (wallClock() - t0).toFixed(1).padStart(8);
    const more = details ? `  ${JSON.stringify(details)}` : "";
    console.log(`${at} ms  ${who.padEnd(7)}  ${step}${more}`);
  };
}

/** `--name value` pairs of the command line. */
export function args(): Record<string, string> {
  const argv = process.argv.slice(2);
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([\w-]+)$/.exec(argv[i]!)?.[1];
    if (name) flags[name] = argv[i + 1] ?? "";
    if (name) i++;
  }
  return flags;
}

/** A text part. */
export function textPart(text: string): Part {
  return {
    content: { $case: "text", value: text },
    mediaType: "text/plain",
    filename: "",
    metadata: undefined,
  };
}

/** The text of a message's text parts. */
export function textOf(message: Message | undefined): string {
  return (message?.parts ?? [])
    .map((part) => part.content?.$case === "text" ? part.content.value : "")
    .join("");
}
