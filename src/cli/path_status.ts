/**
 * The status lines about a connection's network path: one when it is up, and
 * one each time ICE moves to another candidate pair (libjuice may leave a
 * TURN pair for a direct one after the channel opened), from the
 * connection's `onpathchange`.
 *
 * @module
 */
import type { ConnectionPath } from "../peer.ts";
import { pathName, pathType, type StatusFields, type StatusLog } from "./log.ts";

/** A connection whose path can be read and watched: a transport or a `WebRTCConnection`. */
export interface PathSource {
  /** The path in use now. */
  getConnectionPath(): Promise<ConnectionPath | undefined>;
  /** Set by {@linkcode reportPath}: called with each new path. */
  onpathchange?: (path: ConnectionPath) => void;
}

/** The lines {@linkcode reportPath} prints, for one connection. */
export interface PathLines {
  /** The event of the first line, e.g. `connected`. */
  event: string;
  /** The first line's message, given the path's name. */
  connected(via: string): string;
  /** A change's message, given the new path's name and the previous path's type. */
  changed(via: string, was: string): string;
  /** Fields of every line in the JSON form, e.g. `{ agent: 1 }`. */
  fields?: StatusFields;
}

/**
 * Prints a connection's path once it is up (`lines.event`), then a
 * `path-changed` line each time it changes. JSON lines carry `path` (see
 * {@linkcode pathType}), both ends' candidate types and the other end's
 * address; a change also carries `previous` (the previous path's type).
 *
 * @param source The connection; its `onpathchange` is set.
 * @param log Where the lines go.
 * @param lines The messages.
 * @param read Reads the path for the first line (default: `source.getConnectionPath()`).
 * @returns Once the first line is printed.
 *
 * @example A path that moves from TURN to a direct pair
 * ```ts
 * import { reportPath } from "./path_status.ts";
 * import { StatusLog } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * const printed: string[] = [];
 * const connection = {
 *   onpathchange: undefined as ((path: object) => void) | undefined,
 *   getConnectionPath: () =>
 *     Promise.resolve({ localCandidateType: "relay", remoteCandidateType: "srflx" }),
 * };
 * await reportPath(connection, new StatusLog({ write: (line) => printed.push(line) }), {
 *   event: "connected",
 *   connected: (via) => `Connected via ${via}`,
 *   changed: (via, was) => `Path changed: now via ${via} (was ${was})`,
 * });
 * connection.onpathchange!({ localCandidateType: "srflx", remoteCandidateType: "srflx" });
 * assert.deepEqual(printed, [
 *   "mcp-webrtc: Connected via relay (this end relay, the other end srflx)",
 *   "mcp-webrtc: Path changed: now via srflx (was relay)",
 * ]);
 * ```
 */
export async function reportPath(
  source: PathSource,
  log: StatusLog,
  lines: PathLines,
  read: () => Promise<ConnectionPath | undefined> = () => source.getConnectionPath(),
): Promise<void> {
  const fields = lines.fields ?? {};
  /** The path last printed; `null` until the first line. */
  let reported: ConnectionPath | undefined | null = null;
  /** Whether a change came before the first line. */
  let early = false;
  const changed = (path: ConnectionPath | undefined) => {
    if (reported === null) {
      early = true;
      return;
    }
    if (path === undefined || key(path) === key(reported)) return;
    const was = reported;
    reported = path;
    log.info(
      "path-changed",
      lines.changed(pathName(path), pathType(was) ?? "an unknown path"),
      { ...fields, ...pathFields(path), previous: pathType(was) },
    );
  };
  source.onpathchange = changed;
  const path = await read().catch(() => undefined);
  reported = path;
  log.info(lines.event, lines.connected(pathName(path)), { ...fields, ...pathFields(path) });
  // A change seen while that read was under way may be older or newer than
  // what it gave: the path in use now says which.
  if (early) changed(await read().catch(() => undefined));
}

function key(path: ConnectionPath | undefined): string {
  return JSON.stringify([path?.localCandidateType, path?.remoteCandidateType, path?.remoteAddress]);
}

function pathFields(path: ConnectionPath | undefined): StatusFields {
  return { path: pathType(path), ...path };
}
