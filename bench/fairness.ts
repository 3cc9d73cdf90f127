/**
 * Whether sessions of one connection wait for each other, on 127.0.0.1, both
 * peers in this process:
 *
 * - small `tools/call` round trips on one session, back to back (each call
 *   issued when the previous one returned), alone, and while another session
 *   of the same connection receives a 64 MiB result;
 * - the 64 MiB result alone (the small session open and silent) and beside
 *   the small calls;
 * - the same with the small calls on an open loop: one due every `PACE_MS`
 *   (200 a second), each issued at its due time whether or not earlier ones
 *   returned, and timed from that due time, not from when a late timer issued
 *   it; alone, and beside the 64 MiB result, alternating with the result
 *   alone. Back to back, a call that waits delays the next ones from even
 *   being issued, so the tail goes under-counted (coordinated omission), and
 *   the calls come faster the faster they return: on two cores that loop
 *   measures how the result and the calls share the CPU rather than how the
 *   connection schedules its sessions. At a fixed pace the load stays the
 *   same whatever the latency;
 * - the same, with the small calls on a connection of their own in this
 *   process: nothing shared with the result but the process (its event loop
 *   and cores), which is what no scheduling between sessions can remove;
 * - 1, 16 and 64 MiB results against the raw native channel (`_native.ts`),
 *   interleaved run by run, so both meet the same load.
 *
 * Where a small call beside the bulk result waits is split in three, read on
 * this process's one clock: the request's way to the desktop, the desktop's
 * turn (its request handed to the server, to the response handed to the
 * channel), and the response's way back; beside it, what the bulk session's
 * channel held buffered when the response was handed over.
 *
 * Prints figures, asserts nothing. Run alone with
 * `deno run -A --v8-flags=--expose-gc bench/fairness.ts [--quick] [--json]`.
 * `SCTP_SEND_BUFFER=<bytes>` in the environment sets node-datachannel's
 * process-wide SCTP send buffer (usrsctp's, outside `bufferedAmount`) first,
 * for every connection of the run, the raw channel's included.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import process from "node:process";
import { z } from "zod";
import { MemorySignaling, WebRTCConnection, type WebRTCSessionTransport } from "../mod.ts";
import { nativePair, rawTransfer } from "./_native.ts";
import { prepareBlob } from "./_transports.ts";

const MIB = 1024 * 1024;
const LOCAL = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
/** Ms between the due times of the open loop's small calls: 200 a second. */
const PACE_MS = 5;
/** The most small calls the open loop issues beside one result, whatever happens to the result. */
const PACED_CAP = 100_000;
/**
 * How early a timer may fire: timers count whole milliseconds, and fire up to
 * one before their time as `performance.now()` reads it. A paced call is issued
 * at the first timer within this of its due time, rather than after another
 * timer that could not fire sooner than a millisecond later.
 */
const TIMER_GRAIN_MS = 1;

/** Percentiles of a list of milliseconds. */
interface Spread {
  n: number;
  p50: number;
  p99: number;
}

/** What this benchmark reports. */
export interface FairnessFigures {
  /** Small calls back to back (each issued when the previous one returned), alone, ms. */
  idle: Spread;
  /** Small calls back to back beside the 64 MiB result on another session, ms. */
  busy: Spread;
  /** Of the busy calls: the request's way, the desktop's turn, the response's way, ms. */
  busyRequestWay: Spread;
  busyDesktop: Spread;
  busyResponseWay: Spread;
  /** KiB the bulk session's channel held when a busy call's response was handed over. */
  bulkBufferedKiB: Spread;
  /** KiB of the bulk session handed, neither buffered nor received yet, at the same moments. */
  bulkInFlightKiB: Spread;
  /** The 64 MiB result alone and beside the calls back to back, ms (medians). */
  bulkAloneMs: number;
  bulkBesideMs: number;
  /** Ms between the due times of the open loop's small calls. */
  paceMs: number;
  /**
   * Small calls on an open loop (one due every `paceMs`, each issued at its due
   * time whether or not earlier ones returned), ms from each call's due time to
   * its response: alone, and beside the 64 MiB result over all its runs.
   */
  pacedAlone: Spread;
  pacedBeside: Spread;
  /** How many paced calls were issued during one 64 MiB result (median over the runs). */
  pacedCallsBeside: number;
  /** The 64 MiB result alone and beside the paced calls, alternating, ms (medians). */
  bulkAlonePacedMs: number;
  bulkBesidePacedMs: number;
  /**
   * CPU of this process (all threads, ms): one small call alone, the 64 MiB
   * result alone, and the result beside the calls with how many calls ran
   * beside it (medians over the runs), or `null` where the runtime cannot tell.
   */
  cpu: { call: number; bulkAlone: number; bulkBeside: number; callsBeside: number } | null;
  /** Small calls on a connection of their own beside the 64 MiB result. */
  apart: Spread;
  /** The 64 MiB result alone and beside the calls on their own connection, ms (medians). */
  bulkAloneApartMs: number;
  bulkBesideApartMs: number;
  /** Results against the raw channel: MB/s medians, by size in MiB. */
  results: { mib: number; webrtcMBps: number; rawMBps: number; ratio: number }[];
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
  return { n: values.length, p50: at(50) ?? NaN, p99: at(99) ?? NaN };
}

const median = (values: number[]) => spread(values).p50;

function server(): McpServer {
  const mcp = new McpServer({ name: "fairness", version: "1.0.0" });
  mcp.registerTool(
    "echo",
    { inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  mcp.registerTool(
    "blob",
    { inputSchema: { bytes: z.number() } },
    ({ bytes }) => ({ content: [{ type: "text", text: prepareBlob(bytes) }] }),
  );
  return mcp;
}

/** CPU time of this process so far, all threads, ms (`NaN` where the runtime cannot tell). */
function cpuMs(): number {
  try {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  } catch {
    return NaN;
  }
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** When each request id was seen at each step, on this process's clock. */
class Trace {
  readonly sent = new Map<number, number>();
  readonly arrived = new Map<number, number>();
  readonly answered = new Map<number, number>();
  readonly buffered = new Map<number, number>();
  /** Bytes of the bulk session handed to its channel on the desktop, and received by the agent. */
  bulkHanded = 0;
  bulkReceived = 0;
  /** Bytes handed and not yet received (nor buffered) when each response was handed over. */
  readonly inFlight = new Map<number, number>();
}

/** Runs every measurement on one connection between two peers in this process. */
export async function measureFairness(quick: boolean): Promise<FairnessFigures> {
  const [a, b] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
  const transports: WebRTCSessionTransport[] = [];
  const trace = new Trace();
  desktop.ontransport = (transport) => {
    transports.push(transport);
    void server().connect(transport).then(() => {
      const receive = transport.onmessage!;
      transport.onmessage = (message, extra) => {
        const id = (message as { id?: number }).id;
        if (typeof id === "number") trace.arrived.set(id, performance.now());
        receive(message, extra);
      };
      const send = transport.send.bind(transport);
      transport.send = (message: JSONRPCMessage, options) => {
        const id = (message as { id?: number }).id;
        if (typeof id === "number" && !("method" in message)) {
          trace.answered.set(id, performance.now());
          const others = transports.filter((other) => other !== transport);
          const buffered = others.reduce(
            (sum, other) =>
              sum +
              ((other as { channel?: { bufferedAmount: number } }).channel?.bufferedAmount ?? 0),
            0,
          );
          trace.buffered.set(id, buffered);
          trace.inFlight.set(id, trace.bulkHanded - buffered - trace.bulkReceived);
        }
        return send(message, options);
      };
    });
  };
  void desktop.connect().catch(() => {});
  const agent = new WebRTCConnection({
    signaling: a,
    linger: 60_000,
    maxReceiveSize: 128 * MIB,
    ...LOCAL,
  });
  // The calls' own connection, for the measurement with nothing shared but the process.
  const [c, d] = MemorySignaling.createPair();
  const desktopApart = new WebRTCConnection({ signaling: d, initiator: false, ...LOCAL });
  desktopApart.ontransport = (transport) => void server().connect(transport);
  void desktopApart.connect().catch(() => {});
  const agentApart = new WebRTCConnection({ signaling: c, linger: 60_000, ...LOCAL });
  const clients: Client[] = [];
  /** The id of the last request the traced session sent: the call in progress's. */
  let lastSent = 0;
  const open = async (traced: boolean, connection = agent) => {
    const client = new Client({ name: "fairness", version: "1.0.0" });
    const transport = connection.openTransport();
    if (traced) {
      const send = transport.send.bind(transport);
      transport.send = (message: JSONRPCMessage, options) => {
        const id = (message as { id?: number }).id;
        if (typeof id === "number" && "method" in message) {
          trace.sent.set(id, performance.now());
          lastSent = id;
        }
        return send(message, options);
      };
    }
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const pair = await nativePair();
  try {
    const small = await open(true);
    const bulk = await open(false);
    const apart = await open(false, agentApart);
    // Count the bulk session's bytes: handed on the desktop, received on the agent.
    const desktopBulk = (transports.at(-1) as unknown as { channel: { send(data: unknown): void } })
      .channel;
    const handOn = desktopBulk.send.bind(desktopBulk);
    desktopBulk.send = (data: unknown) => {
      trace.bulkHanded += typeof data === "string" ? data.length : (data as Uint8Array).byteLength;
      handOn(data);
    };
    (bulk.transport as unknown as { channel: EventTarget }).channel.addEventListener(
      "message",
      (event) => {
        const data = (event as MessageEvent).data;
        trace.bulkReceived += typeof data === "string" ? data.length : data.byteLength;
      },
    );
    const ids: number[] = [];
    const callApart = async () => {
      const start = performance.now();
      await apart.callTool({ name: "echo", arguments: { text: "hello" } });
      return performance.now() - start;
    };
    const call = async () => {
      const start = performance.now();
      await small.callTool({ name: "echo", arguments: { text: "hello" } });
      const ms = performance.now() - start;
      ids.push(lastSent);
      return ms;
    };
    /**
     * Small calls on an open loop: one due every `PACE_MS` from now, each
     * issued at its due time (all those due at once if the timer fired late)
     * whether or not earlier ones returned, until `stop()` says so or `limit`
     * were issued; each call's ms from its due time (or from its issue, if a
     * timer fired early) to its response go to `times`. Resolves with how many
     * were issued once all of them returned.
     */
    const paced = (times: number[], limit: number, stop: () => boolean) =>
      new Promise<number>((resolve, reject) => {
        const start = performance.now();
        const calls: Promise<void>[] = [];
        let failure: unknown;
        let issued = 0;
        const over = () => stop() || issued >= limit || failure !== undefined;
        const tick = () => {
          while (!over() && start + issued * PACE_MS <= performance.now() + TIMER_GRAIN_MS) {
            // From the due time if issued late, from the issue if a timer fired early.
            const from = Math.min(start + issued++ * PACE_MS, performance.now());
            calls.push(
              small.callTool({ name: "echo", arguments: { text: "hello" } }).then(
                () => void times.push(performance.now() - from),
                (error) => void (failure ??= error),
              ),
            );
          }
          if (!over()) {
            // Due times follow from the start, so a late timer does not move the later ones.
            setTimeout(tick, Math.max(0, start + issued * PACE_MS - performance.now()));
            return;
          }
          void Promise.all(calls).then(() =>
            failure === undefined ? resolve(issued) : reject(failure)
          );
        };
        tick();
      });
    const bulkCall = async (bytes: number) => {
      const start = performance.now();
      const result = await bulk.callTool({ name: "blob", arguments: { bytes } }, undefined, {
        timeout: 300_000,
      });
      const ms = performance.now() - start;
      const text = (result.content as { text: string }[])[0].text;
      if (text.length !== bytes) {
        throw new Error(`blob returned ${text.length} bytes, not ${bytes}`);
      }
      return ms;
    };
    for (let i = 0; i < 200; i++) await call();
    for (let i = 0; i < 200; i++) await callApart();
    const idle: number[] = [];
    const idleCpu = cpuMs();
    for (let i = 0; i < (quick ? 300 : 1000); i++) idle.push(await call());
    const callCpuMs = (cpuMs() - idleCpu) / idle.length;

    // Results against the raw channel, interleaved.
    const results: FairnessFigures["results"] = [];
    for (
      const [mib, warmup, runs] of quick
        ? [[1, 1, 3], [16, 1, 2], [64, 0, 1]]
        : [[1, 2, 7], [16, 2, 5], [64, 1, 3]]
    ) {
      const bytes = mib * MIB;
      prepareBlob(bytes);
      const mine: number[] = [];
      const raw: number[] = [];
      for (let run = 0; run < warmup + runs; run++) {
        for (const which of run % 2 ? ["raw", "webrtc"] : ["webrtc", "raw"]) {
          gc();
          await new Promise((resolve) => setTimeout(resolve, 30));
          const ms = which === "raw"
            ? await rawTransfer(pair.answerer, pair.offerer, bytes)
            : await bulkCall(bytes);
          if (run >= warmup) (which === "raw" ? raw : mine).push(ms);
        }
      }
      const rate = (ms: number) => bytes / 1e6 / (ms / 1000);
      const webrtcMBps = rate(median(mine));
      const rawMBps = rate(median(raw));
      results.push({ mib, webrtcMBps, rawMBps, ratio: webrtcMBps / rawMBps });
    }

    // The 64 MiB result alone, then beside small calls, alternating.
    const alone: number[] = [];
    const beside: number[] = [];
    const busy: number[] = [];
    const busyIds: number[] = [];
    const aloneApart: number[] = [];
    const besideApart: number[] = [];
    const busyApart: number[] = [];
    /** The 64 MiB result while `calls` runs back to back; each call's ms to `times`. */
    const besideCalls = async (
      calls: () => Promise<number>,
      times: number[],
      cpuOf?: { cpu: number; calls: number }[],
    ) => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 30));
      const before = times.length;
      const cpu = cpuMs();
      let done = false;
      const transfer = bulkCall(64 * MIB).then((ms) => {
        done = true;
        return ms;
      });
      while (!done) times.push(await calls());
      const ms = await transfer;
      cpuOf?.push({ cpu: cpuMs() - cpu, calls: times.length - before });
      return ms;
    };
    const besideCpu: { cpu: number; calls: number }[] = [];
    const aloneCpu: number[] = [];
    const bulkAlone = async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 30));
      const cpu = cpuMs();
      const ms = await bulkCall(64 * MIB);
      aloneCpu.push(cpuMs() - cpu);
      return ms;
    };
    for (let round = 0; round < (quick ? 1 : 3); round++) {
      alone.push(await bulkAlone());
      beside.push(
        await besideCalls(
          async () => {
            const ms = await call();
            busyIds.push(lastSent);
            return ms;
          },
          busy,
          besideCpu,
        ),
      );
      aloneApart.push(await bulkAlone());
      besideApart.push(await besideCalls(callApart, busyApart));
    }

    // The same result beside small calls on an open loop, alternating with the result alone.
    const pacedAlone: number[] = [];
    await paced(pacedAlone, 200, () => false);
    const alonePaced: number[] = [];
    const besidePaced: number[] = [];
    const pacedBeside: number[] = [];
    const pacedIssued: number[] = [];
    for (let round = 0; round < (quick ? 2 : 8); round++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 30));
      alonePaced.push(await bulkCall(64 * MIB));
      gc();
      await new Promise((resolve) => setTimeout(resolve, 30));
      let done = false;
      const transfer = bulkCall(64 * MIB);
      // Stop issuing once the result is in, or has failed (its own timeout is 300 s).
      transfer.then(() => done = true, () => done = true);
      const [ms, issued] = await Promise.all([
        transfer,
        paced(pacedBeside, PACED_CAP, () => done),
      ]);
      besidePaced.push(ms);
      pacedIssued.push(issued);
    }
    const way = (from: Map<number, number>, to: Map<number, number>) =>
      spread(busyIds.map((id) => to.get(id)! - from.get(id)!));
    const received = new Map(
      busyIds.map((id, i) => [id, trace.sent.get(id)! + busy[i]]),
    );
    return {
      idle: spread(idle),
      busy: spread(busy),
      busyRequestWay: way(trace.sent, trace.arrived),
      busyDesktop: way(trace.arrived, trace.answered),
      busyResponseWay: way(trace.answered, received),
      bulkBufferedKiB: spread(busyIds.map((id) => trace.buffered.get(id)! / 1024)),
      bulkInFlightKiB: spread(busyIds.map((id) => trace.inFlight.get(id)! / 1024)),
      bulkAloneMs: median(alone),
      bulkBesideMs: median(beside),
      paceMs: PACE_MS,
      pacedAlone: spread(pacedAlone),
      pacedBeside: spread(pacedBeside),
      pacedCallsBeside: median(pacedIssued),
      bulkAlonePacedMs: median(alonePaced),
      bulkBesidePacedMs: median(besidePaced),
      cpu: Number.isFinite(callCpuMs)
        ? {
          call: callCpuMs,
          bulkAlone: median(aloneCpu),
          bulkBeside: median(besideCpu.map(({ cpu }) => cpu)),
          callsBeside: median(besideCpu.map(({ calls }) => calls)),
        }
        : null,
      apart: spread(busyApart),
      bulkAloneApartMs: median(aloneApart),
      bulkBesideApartMs: median(besideApart),
      results,
    };
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await agent.close();
    await desktop.close();
    await agentApart.close();
    await desktopApart.close();
    await pair.close();
  }
}

/**
 * What the process's cores allow: the result's speed beside the calls if the
 * calls cost only their CPU alone, and the result's CPU kept its own pace.
 */
function cpuLines(cpu: NonNullable<FairnessFigures["cpu"]>): string[] {
  const calls = cpu.callsBeside * cpu.call;
  return [
    `  CPU of the process (all threads): a small call alone ${
      cpu.call.toFixed(2)
    } ms; the 64 MiB result alone ${cpu.bulkAlone.toFixed(0)} ms, beside the calls ${
      cpu.bulkBeside.toFixed(0)
    } ms`,
    `    with ${cpu.callsBeside} calls beside it (${
      calls.toFixed(0)
    } ms of CPU at their cost alone), the cores allow at most ${
      (cpu.bulkAlone / (cpu.bulkAlone + calls)).toFixed(2)
    }× its speed alone`,
  ];
}

/**
 * What the process's cores allow the result beside the paced calls, reckoned
 * as `cpuLines` does, with each call at the CPU of a small call alone.
 */
function pacedCpuLine(cpu: NonNullable<FairnessFigures["cpu"]>, callsBeside: number): string {
  const calls = callsBeside * cpu.call;
  return `      ${callsBeside} calls at their cost alone take ${
    calls.toFixed(0)
  } ms of CPU: the cores allow at most ${
    (cpu.bulkAlone / (cpu.bulkAlone + calls)).toFixed(2)
  }× its speed alone`;
}

/** The figures as lines of text. */
export function renderFairness(f: FairnessFigures): string {
  const ms = (s: Spread) => `p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms (n=${s.n})`;
  return [
    "Sessions of one connection (loopback, both peers in one process)",
    `  small calls back to back, alone:           ${ms(f.idle)}`,
    `  small calls back to back, beside 64 MiB:   ${ms(f.busy)}  (target p50 <= 2, p99 <= 20)`,
    `    the request's way to the desktop:        ${ms(f.busyRequestWay)}`,
    `    the desktop's turn:                      ${ms(f.busyDesktop)}`,
    `    the response's way back:                 ${ms(f.busyResponseWay)}`,
    `    buffered on the bulk session, KiB:       p50 ${f.bulkBufferedKiB.p50.toFixed(0)}, p99 ${
      f.bulkBufferedKiB.p99.toFixed(0)
    }`,
    `    in flight on the bulk session, KiB:      p50 ${f.bulkInFlightKiB.p50.toFixed(0)}, p99 ${
      f.bulkInFlightKiB.p99.toFixed(0)
    }`,
    `  64 MiB result alone ${f.bulkAloneMs.toFixed(0)} ms, beside the back-to-back calls ${
      f.bulkBesideMs.toFixed(0)
    } ms: ${(f.bulkAloneMs / f.bulkBesideMs).toFixed(2)}× its speed alone (target >= 0.9×)`,
    ...(f.cpu ? cpuLines(f.cpu) : []),
    `  small calls every ${f.paceMs} ms, open loop (latency from each call's due time):`,
    `    alone:                                   ${ms(f.pacedAlone)}`,
    `    beside a 64 MiB result:                  ${
      ms(f.pacedBeside)
    }  (target p50 <= 2, p99 <= 20)`,
    `    64 MiB result alone ${f.bulkAlonePacedMs.toFixed(0)} ms, beside them ${
      f.bulkBesidePacedMs.toFixed(0)
    } ms (${f.pacedCallsBeside} calls during it): ${
      (f.bulkAlonePacedMs / f.bulkBesidePacedMs).toFixed(2)
    }× its speed alone (target >= 0.9×)`,
    ...(f.cpu ? [pacedCpuLine(f.cpu, f.pacedCallsBeside)] : []),
    "  The same back-to-back calls on a connection of their own (nothing shared with the result but the process):",
    `    small calls beside a 64 MiB result:      ${ms(f.apart)}`,
    `    64 MiB result alone ${f.bulkAloneApartMs.toFixed(0)} ms, beside the calls ${
      f.bulkBesideApartMs.toFixed(0)
    } ms: ${(f.bulkAloneApartMs / f.bulkBesideApartMs).toFixed(2)}× its speed alone`,
    ...f.results.map((r) =>
      `  ${r.mib} MiB result ${r.webrtcMBps.toFixed(1)} MB/s, raw channel ${
        r.rawMBps.toFixed(1)
      } MB/s: ${r.ratio.toFixed(2)}× (target >= 0.9×)`
    ),
  ].join("\n");
}

if (import.meta.main) {
  const sendBuffer = Deno.env.get("SCTP_SEND_BUFFER");
  const recvBuffer = Deno.env.get("SCTP_RECV_BUFFER");
  if (sendBuffer || recvBuffer) {
    const { default: nodeDataChannel } = await import("node-datachannel");
    nodeDataChannel.setSctpSettings({
      ...(sendBuffer && { sendBufferSize: Number(sendBuffer) }),
      ...(recvBuffer && { recvBufferSize: Number(recvBuffer) }),
    });
  }
  const figures = await measureFairness(Deno.args.includes("--quick"));
  console.log(Deno.args.includes("--json") ? JSON.stringify(figures) : renderFairness(figures));
  // node-datachannel's threads may outlive the connections by a moment; the figures are out.
  Deno.exit(0);
}
