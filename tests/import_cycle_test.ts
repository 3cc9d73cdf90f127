/**
 * No module under `src/` imports, directly or through others, a module that
 * imports it back (type imports included): each file can be read after those
 * it depends on. The graph is `deno info --json` of every entry of
 * `deno.json` and of every source file under `src/`.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
const src = new URL("src/", root).href;

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

function sourceFiles(dir: URL): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) found.push(...sourceFiles(url));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
      found.push(url.pathname);
    }
  }
  return found;
}

/** The import graph among the modules under `src/`, from `deno info --json`. */
async function importGraph(): Promise<Map<string, Set<string>>> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
    exports: Record<string, string>;
  };
  const roots = [
    ...Object.values(config.exports).map((path) => new URL(path, root).pathname),
    ...sourceFiles(new URL("src/", root)),
  ];
  const graph = new Map<string, Set<string>>();
  // One `deno info` per root, as it takes one; the graphs overlap and merge.
  for (const path of roots) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", path],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      modules: InfoModule[];
    };
    for (const module of info.modules) {
      if (!module.specifier.startsWith(src)) continue;
      const edges = graph.get(module.specifier) ?? new Set<string>();
      for (const dependency of module.dependencies ?? []) {
        for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
          if (target?.startsWith(src)) edges.add(target);
        }
      }
      graph.set(module.specifier, edges);
    }
  }
  return graph;
}

/** One cycle of `graph`, as the path that closes it, or undefined. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = onPath.indexOf(node);
    if (at >= 0) return [...onPath.slice(at), node];
    if (done.has(node)) return undefined;
    onPath.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(node);
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

Deno.test("findCycle finds a cycle of three modules and none in a chain", () => {
  const chain = new Map([["a", new Set(["b"])], ["b", new Set(["c"])], ["c", new Set<string>()]]);
  assert.equal(findCycle(chain), undefined);
  const ring = new Map([["a", new Set(["b"])], ["b", new Set(["c"])], ["c", new Set(["a"])]]);
  assert.deepEqual(findCycle(ring), ["a", "b", "c", "a"]);
});

Deno.test("no module under src/ imports itself through others", async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 50, `only ${graph.size} modules found under src/`);
  const cycle = findCycle(graph);
  assert.equal(
    cycle?.map((specifier) => specifier.slice(src.length)).join(" -> "),
    undefined,
    "an import cycle under src/",
  );
});
