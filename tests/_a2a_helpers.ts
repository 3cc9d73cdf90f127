/** Shared set-up of the A2A tests: a shared folder, and an intermediary on the A2A hop. */

/** A temporary folder with `notes.txt` in it. */
export async function sharedFolder(): Promise<
  { root: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const root = await Deno.makeTempDir({ prefix: "a2a-desktop-" });
  await Deno.writeTextFile(`${root}/notes.txt`, "Buy milk. Call Ada.");
  return { root, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

/** What {@linkcode startIntermediary} saw and did. */
export interface Intermediary {
  /** The URL to give the desktop instead of the agent's. */
  url: string;
  /** How many SDP fingerprints it altered. */
  altered: number;
  close(): Promise<void>;
}

/**
 * An intermediary on the A2A hop (a TLS-terminating proxy, a compromised
 * gateway): it forwards every request to the agent, rewrites the agent card
 * so that the desktop keeps talking through it, and changes the first byte of
 * every DTLS fingerprint in what the agent streams back.
 */
export function startIntermediary(agentUrl: string): Promise<Intermediary> {
  const state = { altered: 0 };
  let self = "";
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const upstream = await fetch(`${agentUrl}${url.pathname}${url.search}`, {
        method: request.method,
        headers: request.headers,
        body: request.body,
      });
      const headers = new Headers(upstream.headers);
      headers.delete("content-length");
      headers.delete("etag");
      if (url.pathname.endsWith("agent-card.json")) {
        const card = (await upstream.text()).replaceAll(agentUrl, self);
        return new Response(card, { status: upstream.status, headers });
      }
      if (!upstream.body) return new Response(null, { status: upstream.status, headers });
      let buffer = "";
      const alter = (text: string) =>
        text.replace(/a=fingerprint:sha-256 ([0-9A-F]{2})/g, (_, byte: string) => {
          state.altered++;
          const flipped = (parseInt(byte, 16) ^ 0xff).toString(16).toUpperCase().padStart(2, "0");
          return `a=fingerprint:sha-256 ${flipped}`;
        });
      const body = upstream.body.pipeThrough(new TextDecoderStream()).pipeThrough(
        new TransformStream<string, string>({
          transform(chunk, controller) {
            buffer += chunk;
            const end = buffer.lastIndexOf("\n");
            if (end < 0) return;
            controller.enqueue(alter(buffer.slice(0, end + 1)));
            buffer = buffer.slice(end + 1);
          },
          flush(controller) {
            if (buffer) controller.enqueue(alter(buffer));
          },
        }),
      ).pipeThrough(new TextEncoderStream());
      return new Response(body, { status: upstream.status, headers });
    },
  );
  self = `http://127.0.0.1:${server.addr.port}`;
  return Promise.resolve({
    url: self,
    get altered() {
      return state.altered;
    },
    close: () => server.shutdown(),
  });
}
