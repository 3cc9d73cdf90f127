/**
 * The TypeScript examples of the README and of the pages it links to
 * (`docs/*.md`, `bench/README.md`) type-check as written, against this
 * checkout (`@mcp/webrtc` is the module here, the other imports are those of
 * `deno.json`). Blocks marked `ts ignore` are left out, and so is the A2A
 * program in `docs/A2A.md`, whose blocks make one program that
 * `tests/a2a_test.ts` runs.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
/** The page and the heading of the section whose examples are run elsewhere. */
const SKIPPED = { page: "docs/A2A.md", section: /^#{1,3} Over A2A: the conversation is the/ };

/** One fenced TypeScript block of a page: its page, its first line number and its source. */
interface Block {
  page: string;
  line: number;
  source: string;
}

/** The Markdown pages that hold examples: the README and the pages beside it. */
async function pages(): Promise<string[]> {
  const found = ["README.md", "bench/README.md"];
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (entry.isFile && entry.name.endsWith(".md")) found.push(`docs/${entry.name}`);
  }
  return found.sort();
}

/** A page's ```ts blocks but those marked `ignore`, each with whether it is in the skipped section. */
function typescriptBlocks(page: string, text: string): (Block & { skipped: boolean })[] {
  const blocks: (Block & { skipped: boolean })[] = [];
  const lines = text.split("\n");
  let skipping = false;
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    if (/^#{1,3} /.test(line)) skipping = page === SKIPPED.page && SKIPPED.section.test(line);
    const fence = /^```(\S*)(.*)$/.exec(line);
    if (!fence || fence[1] === "") continue;
    const end = lines.indexOf("```", index + 1);
    assert.ok(end > index, `the block at ${page}:${index + 1} is not closed`);
    if (fence[1] === "ts" && !/\bignore\b/.test(fence[2])) {
      blocks.push({
        page,
        line: index + 1,
        source: lines.slice(index + 1, end).join("\n"),
        skipped: skipping,
      });
    }
    index = end;
  }
  return blocks;
}

const all = (await Promise.all(
  (await pages()).map(async (page) =>
    typescriptBlocks(page, await Deno.readTextFile(new URL(page, root)))
  ),
)).flat();
const blocks = all.filter((block) => !block.skipped);

Deno.test("the README has TypeScript examples, and every page's examples are checked here or run by the A2A test", () => {
  const readme = blocks.filter((block) => block.page === "README.md").length;
  assert.ok(readme >= 3, `found ${readme} in the README`);
  // The A2A program's three blocks, which tests/a2a_test.ts runs as one program; no other is left out.
  assert.deepEqual(
    all.filter((block) => block.skipped).map((block) => block.page),
    [SKIPPED.page, SKIPPED.page, SKIPPED.page],
  );
});

Deno.test("the TypeScript examples of the README and docs type-check as written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-readme-" });
  try {
    const files = [];
    for (const block of blocks) {
      // Each a module of its own (top-level await, nothing shared between blocks),
      // named after its page and line.
      const file = `${dir}/${block.page.replace(/\W/g, "_")}_line_${block.line}.ts`;
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
