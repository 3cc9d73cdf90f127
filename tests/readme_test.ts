/**
 * The README's TypeScript examples type-check as written, against this
 * checkout (`@mcp/webrtc` is the module here, the other imports are those of
 * `deno.json`). Blocks marked `ts ignore` are left out, and so is the A2A
 * section, whose examples its own tests run.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
/** The heading of the section whose examples are tested elsewhere. */
const SKIPPED_SECTION = /^### Over A2A/;

/** One fenced TypeScript block of the README: its first line number and source. */
interface Block {
  line: number;
  source: string;
}

/** The README's ```ts blocks, but those marked `ignore` and those of the skipped section. */
function typescriptBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  const lines = readme.split("\n");
  let skipping = false;
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    if (/^#{1,3} /.test(line)) skipping = SKIPPED_SECTION.test(line);
    const fence = /^```(\S*)(.*)$/.exec(line);
    if (!fence || fence[1] === "") continue;
    const end = lines.indexOf("```", index + 1);
    assert.ok(end > index, `the block at README.md:${index + 1} is not closed`);
    if (fence[1] === "ts" && !/\bignore\b/.test(fence[2]) && !skipping) {
      blocks.push({ line: index + 1, source: lines.slice(index + 1, end).join("\n") });
    }
    index = end;
  }
  return blocks;
}

const blocks = typescriptBlocks(await Deno.readTextFile(new URL("README.md", root)));

Deno.test("the README has TypeScript examples outside the A2A section", () => {
  assert.ok(blocks.length >= 3, `found ${blocks.length}`);
});

Deno.test("the README's TypeScript examples type-check as written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-readme-" });
  try {
    const files = [];
    for (const block of blocks) {
      // Each a module of its own (top-level await, nothing shared between blocks),
      // named after its line in the README.
      const file = `${dir}/README_line_${block.line}.ts`;
      await Deno.writeTextFile(file, `${block.source}\nexport {};\n`);
      files.push(file);
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", new URL("deno.json", root).pathname, ...files],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
