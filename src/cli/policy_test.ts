import assert from "node:assert/strict";
import { AuditFile, auditLine, parseToolList } from "./policy.ts";
import { AUDIT_MAX_NAME_LENGTH } from "../constants.ts";

Deno.test("AuditFile holds at most its queue's bytes while writing, drops the lines past it, and then writes a line counting them", async () => {
  const path = await Deno.makeTempFile();
  try {
    const file = await AuditFile.open(path, { queueBytes: 40 });
    const reasons: string[] = [];
    file.ondrop = (reason) => reasons.push(reason);
    // Each line is 20 bytes with its newline: the first is being written,
    // two wait in the queue, and the other seven do not fit.
    const lines = Array.from({ length: 10 }, (_, i) => `{"n":${i}}`.padEnd(19, " "));
    for (const line of lines) file.write(line);
    assert.equal(file.dropped, 7);
    assert.deepEqual(reasons, ["the audit queue is full (AUDIT_QUEUE_BYTES)"]);
    await file.close();
    const written = (await Deno.readTextFile(path)).trimEnd().split("\n");
    assert.deepEqual(written.slice(0, 3), lines.slice(0, 3));
    assert.equal(written.length, 4);
    const note = JSON.parse(written[3]);
    assert.equal(note.dropped, 7);
    assert.match(note.message, /7 audit records were not written/);
    file.write("after");
    assert.equal(file.dropped, 1);
    assert.deepEqual(reasons.at(-1), "the audit file is closed");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("AuditFile appends to an existing file and creates a new one with mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/audit.jsonl`;
    for (const text of ["one", "two"]) {
      const file = await AuditFile.open(path);
      file.write(text);
      await file.close();
    }
    assert.equal(await Deno.readTextFile(path), "one\ntwo\n");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditLine() cuts a long tool name and escapes control characters an agent put in it", () => {
  const line = auditLine({
    kind: "request",
    method: "tools/call",
    tool: "\x1b[2K" + "x".repeat(1_000),
    start: 0,
    durationMs: 1.4,
    ok: true,
  });
  const parsed = JSON.parse(line);
  assert.equal(parsed.tool.length, "\\x1b".length + AUDIT_MAX_NAME_LENGTH);
  assert.ok(parsed.tool.startsWith("\\x1b[2K") && parsed.tool.endsWith("…"));
  assert.equal(parsed.durationMs, 1);
  assert.ok(![...line].some((character) => character.charCodeAt(0) < 0x20));
});

Deno.test("parseToolList() reads names separated by commas and refuses a list without one", () => {
  assert.deepEqual(parseToolList(" a ,b,,a", "--tools"), ["a", "b"]);
  assert.throws(
    () => parseToolList(",", "--tools"),
    /Cannot read --tools as it must be tool names separated by commas/,
  );
});
