/**
 * The network path a connection uses, read from its `getStats()` report.
 *
 * @module
 */

import type { ConnectionPath } from "./types.ts";

/** What the reading needs besides the statistics. */
export interface PathContext {
  /** The first remote candidate applied (its `candidate` line). */
  readonly firstRemoteCandidate?: string;
  /** Whether this side made the offer. */
  readonly initiator: boolean;
  /** Whether the answer said the answerer's check succeeded before it answered. */
  readonly pathFound: boolean;
}

/** The selected candidate pair of a `getStats()` report, as a {@linkcode ConnectionPath}. */
export function readConnectionPath(
  stats: unknown,
  context: PathContext,
): ConnectionPath | undefined {
  if (!stats || typeof (stats as Map<string, unknown>).forEach !== "function") return undefined;
  const reports = new Map<string, Record<string, unknown>>();
  (stats as Map<string, Record<string, unknown>>).forEach((report, id) => reports.set(id, report));
  let pair: Record<string, unknown> | undefined;
  for (const report of reports.values()) {
    if (report.type === "transport" && typeof report.selectedCandidatePairId === "string") {
      pair = reports.get(report.selectedCandidatePairId);
    }
  }
  pair ??= [...reports.values()].find((report) =>
    report.type === "candidate-pair" && report.state === "succeeded" && report.nominated
  );
  if (!pair) return undefined;
  const local = reports.get(String(pair.localCandidateId));
  const remote = reports.get(String(pair.remoteCandidateId));
  const address = remote?.address ?? remote?.ip;
  const first = context.firstRemoteCandidate?.split(" ");
  let remoteType = remote?.candidateType as string | undefined;
  if (first !== undefined && first[4] === String(address) && first[5] === String(remote?.port)) {
    const localAddress = String(local?.address ?? local?.ip);
    if (remoteType === "prflx" || /^(127\.|::1$|::ffff:127\.)/.test(localAddress)) {
      // Learnt from the other peer's check before it was signalled: it is
      // that signalled candidate, of that type. On loopback every address
      // is this host's, so the candidate reported is the one in use.
      remoteType = first[7];
    } else if (context.initiator && context.pathFound) {
      // libjuice keeps the candidate it learnt from the answerer's check
      // that came before the answer in a slot that the answer, then the
      // answerer's first candidate, overwrite (`agent_set_remote_description`
      // replaces the remote description whole): on the offerer, the pair
      // that check made reports that candidate instead of the address in
      // use. That pair's other end is peer-reflexive; its address is not
      // known here.
      return {
        localCandidateType: local?.candidateType as string | undefined,
        remoteCandidateType: "prflx",
      };
    }
  }
  return {
    localCandidateType: local?.candidateType as string | undefined,
    remoteCandidateType: remoteType,
    remoteAddress: address === undefined ? undefined : `${address}:${remote?.port}`,
  };
}
