/**
 * The local signalling service as a user starts it, `deno task signal`
 * (`worker/local.ts`) and `mcp-webrtc signal`, as real processes: the URL it
 * prints is the address it listens on, and TURN settings in its environment
 * reach the rooms' welcomes as on the deployed worker. And a guest that dials
 * a desktop gone from its room hears so at once.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { SignalingRoomError, TicketSignaling, WebRTCListener } from "../mod.ts";
import { createRoomId, createRoomKey, keyVerifier, SignalingRoom } from "../src/signaling/mod.ts";
import { createTestServer, LOCAL, withWorker } from "./_helpers.ts";
import { upgradeAnswer } from "../worker/tests/_raw_socket.ts";

const LOCAL_WORKER = new URL("../worker/local.ts", import.meta.url).pathname;
const CLI = new URL("../src/cli/main.ts", import.meta.url).pathname;
/** How long a local service may take to print its URL (it bundles the worker first). */
const START_TIMEOUT_MS = 60_000;

/** A running local service: its first stdout line, and how to stop it. */
interface Service {
  url: string;
  stderr(): string;
  stop(): Promise<Deno.CommandStatus>;
}

/** Runs `args` (after `deno run -A`) until its first stdout line, with `env` added. */
async function start(args: string[], env: Record<string, string> = {}): Promise<Service> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let errors = "";
  const drained = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (errors += chunk) }),
  );
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  clearTimeout(timer);
  const rest = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const status = await child.status;
    await Promise.all([drained, rest]);
    return status;
  };
  if (!out.includes("\n")) {
    await stop();
    throw new Error(`${args.join(" ")} printed no URL; stderr: ${errors}`);
  }
  return { url: out.split("\n")[0].trim(), stderr: () => errors, stop };
}

/** The body of `GET /health` at the service printed as `url`. */
async function health(url: string): Promise<unknown> {
  const response = await fetch(`${url.replace(/^ws/, "http")}/health`);
  return await response.json();
}

for (
  const [name, command] of [
    ["deno task signal", [LOCAL_WORKER]],
    ["mcp-webrtc signal", [CLI, "signal"]],
  ] as const
) {
  Deno.test(`${name} --host 127.0.0.2 prints the address it listens on, and answers there`, async () => {
    const service = await start([...command, "--host", "127.0.0.2", "--port", "0"]);
    try {
      assert.match(service.url, /^ws:\/\/127\.0\.0\.2:\d+$/);
      assert.deepEqual(await health(service.url), { ok: true });
      assert.match(service.stderr(), new RegExp(`listening on ${service.url}`));
    } finally {
      await service.stop();
    }
  });
}

Deno.test("deno task signal --host ::1 prints a bracketed IPv6 URL that answers", async () => {
  const service = await start([LOCAL_WORKER, "--host", "::1", "--port", "0"]);
  try {
    assert.match(service.url, /^ws:\/\/\[::1\]:\d+$/);
    assert.deepEqual(await health(service.url), { ok: true });
  } finally {
    await service.stop();
  }
});

/** Sends `line` with a WebSocket upgrade's headers over plain TCP; returns the status and the head. */
function rawUpgrade(url: string, line: string): Promise<{ status: number; text: string }> {
  return upgradeAnswer(
    url.replace(/^ws/, "http"),
    line,
    ["mcp-webrtc.v1", `mcp-webrtc.key.${createRoomKey()}`],
    ["Content-Length: 0"],
  );
}

Deno.test("deno task signal answers a room asked with an Upgrade header and any method but GET with 405, as the deployed worker does", async () => {
  const service = await start([LOCAL_WORKER, "--port", "0"]);
  try {
    const room = createRoomId();
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]) {
      const { status, text } = await rawUpgrade(
        service.url,
        `${method} /v1/rooms/${room}?role=guest HTTP/1.1`,
      );
      assert.equal(status, 405, `${method}: ${text}`);
      assert.match(text, /\r\nallow: GET\r\n/i, method);
      if (method !== "HEAD") assert.match(text, /"code":"method_not_allowed"/, method);
    }
    // A GET still joins.
    const joined = await SignalingRoom.join(`${service.url}/v1/rooms/${room}`, {
      role: "host",
      key: createRoomKey(),
      guestVerifier: await keyVerifier(createRoomKey()),
      reconnect: false,
    });
    joined.close();
  } finally {
    await service.stop();
  }
});

const TURN_SECRET = "local-turn-secret-for-tests";
const TURN_ENV = {
  TURN_URLS: "turn:127.0.0.1:3478, turns:127.0.0.1:5349",
  TURN_SECRET,
  TURN_TTL_SECONDS: "600",
};

for (
  const [name, command] of [
    ["deno task signal", [LOCAL_WORKER]],
    ["mcp-webrtc signal", [CLI, "signal"]],
  ] as const
) {
  Deno.test(`${name} with TURN_URLS and TURN_SECRET in its environment hands members credentials for those TURN servers`, async () => {
    const service = await start([...command, "--port", "0"], TURN_ENV);
    const room = await SignalingRoom.join(`${service.url}/v1/rooms/${createRoomId()}`, {
      role: "host",
      key: createRoomKey(),
      guestVerifier: await keyVerifier(createRoomKey()),
      reconnect: false,
    });
    try {
      // The room mints credentials when a member asks for them, not on joining.
      const servers = await room.requestIceServers();
      assert.equal(servers?.length, 1, JSON.stringify(servers));
      const [server] = servers!;
      assert.deepEqual(server.urls, ["turn:127.0.0.1:3478", "turns:127.0.0.1:5349"]);
      const [expiry, who] = server.username!.split(":");
      assert.equal(who, "host");
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Number(expiry) > now + 500 && Number(expiry) <= now + 600, expiry);
      assert.equal(
        server.credential,
        createHmac("sha1", TURN_SECRET).update(server.username!).digest("base64"),
      );
      assert.ok(!JSON.stringify(servers).includes(TURN_SECRET), "the secret left the service");
    } finally {
      room.close();
      await service.stop();
    }
  });
}

Deno.test("deno task signal refuses TURN settings that would hand out nothing usable, naming the variable", async () => {
  for (
    const [env, named] of [
      [{ TURN_URLS: "turn.example:3478", TURN_SECRET }, /TURN_URLS.*turn\.example:3478/],
      [{ TURN_SECRET }, /TURN_SECRET.*TURN_URLS/],
      [{ ...TURN_ENV, TURN_TTL_SECONDS: "a day" }, /TURN_TTL_SECONDS.*a day/],
      [{ CLOUDFLARE_TURN_KEY_ID: "key" }, /CLOUDFLARE_TURN_API_TOKEN/],
    ] as const
  ) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", LOCAL_WORKER, "--port", "0"],
      env,
      signal: AbortSignal.timeout(START_TIMEOUT_MS),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 1, JSON.stringify(env));
    assert.equal(new TextDecoder().decode(output.stdout), "");
    const stderr = new TextDecoder().decode(output.stderr);
    assert.match(stderr, /^Cannot start the signalling server as /m);
    assert.match(stderr, named);
    assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace instead of a sentence");
  }
});

Deno.test("a guest dialling a desktop that stopped sharing hears at once that it is not in its room, then the wait ends as before", async () => {
  await withWorker(async (worker) => {
    const desktop = await WebRTCListener.listen({
      url: worker.url,
      createServer: createTestServer,
      ...LOCAL,
    });
    const ticket = desktop.ticket!;
    // Present: no notice.
    let notices = 0;
    const present = new TicketSignaling(ticket, {
      hostTimeout: 5_000,
      onwaitforhost: () => notices++,
    });
    await present.start();
    assert.equal(notices, 0);
    await present.close();
    // Gone: the notice comes before the wait of hostTimeout ends.
    await desktop.close();
    const heard = Promise.withResolvers<number>();
    const started = performance.now();
    const gone = new TicketSignaling(ticket, {
      hostTimeout: 1_500,
      onwaitforhost: () => heard.resolve(performance.now() - started),
    });
    const starting = gone.start();
    const failed = assert.rejects(starting, (error: Error) => {
      assert.ok(error instanceof SignalingRoomError, String(error));
      assert.equal(error.code, "host_absent");
      return true;
    });
    // Bounded: the start settles when the wait ends, with or without a notice.
    const noticeMs = await Promise.race([heard.promise, starting.then(() => -1, () => -1)]);
    assert.ok(noticeMs >= 0, "no notice came before the wait for the desktop ended");
    const settled = await Promise.race([
      starting.then(() => "resolved", () => "rejected"),
      "pending",
    ]);
    assert.equal(settled, "pending", "the notice came only once the wait was over");
    await failed;
    assert.ok(noticeMs < 1_500, String(noticeMs));
    await gone.close();
  });
});
