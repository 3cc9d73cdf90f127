/**
 * What a process holds, read from Linux's /proc: its TCP sockets by state.
 * The worker's tests use it to check that workerd leaves no connection behind.
 */

/** TCP states as /proc/net/tcp writes them. */
const STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

interface TcpEntry {
  localPort: number;
  state: string;
  inode: string;
}

function readTcpTable(pid: number): TcpEntry[] {
  const entries: TcpEntry[] = [];
  for (const file of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/net/${file}`);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      entries.push({
        localPort: parseInt(fields[1]!.split(":")[1]!, 16),
        state: STATES[fields[3]!] ?? fields[3]!,
        inode: fields[9]!,
      });
    }
  }
  return entries;
}

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const match = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`).match(/^socket:\[(\d+)\]$/);
      if (match) inodes.add(match[1]!);
    } catch {
      // The descriptor closed while we looked.
    }
  }
  return inodes;
}

/**
 * Counts the TCP sockets a process holds open on one local port, by state
 * (e.g. `ESTABLISHED`, `CLOSE_WAIT`, `LISTEN`).
 */
export function tcpSocketsOf(pid: number, port: number): Record<string, number> {
  const inodes = socketInodes(pid);
  const counts: Record<string, number> = {};
  for (const entry of readTcpTable(pid)) {
    if (entry.localPort === port && inodes.has(entry.inode)) {
      counts[entry.state] = (counts[entry.state] ?? 0) + 1;
    }
  }
  return counts;
}

/**
 * Waits until `read()` returns what `expected` holds, checking every 50 ms
 * for at most `timeout` ms.
 *
 * @returns The last value read, equal to `expected` unless the time ran out.
 */
export async function settle<T>(read: () => T, expected: T, timeout = 5_000): Promise<T> {
  const deadline = Date.now() + timeout;
  let value = read();
  while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = read();
  }
  return value;
}

/**
 * Finds the child process of this one that listens on a TCP port (the
 * workerd that Miniflare started), or throws.
 */
export function listenerPid(port: number): number {
  const children = [...Deno.readDirSync(`/proc/${Deno.pid}/task`)].flatMap((task) =>
    Deno.readTextFileSync(`/proc/${Deno.pid}/task/${task.name}/children`).trim().split(/\s+/)
      .filter((pid) => pid !== "").map(Number)
  );
  // Miniflare may run workerd under a shell or another process: look one level down too.
  const candidates = [
    ...children,
    ...children.flatMap((pid) => {
      try {
        return [...Deno.readDirSync(`/proc/${pid}/task`)].flatMap((task) =>
          Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim().split(/\s+/)
            .filter((p) => p !== "").map(Number)
        );
      } catch {
        return [];
      }
    }),
  ];
  for (const pid of candidates) {
    let inodes: Set<string>;
    try {
      inodes = socketInodes(pid);
    } catch {
      continue;
    }
    const listening = readTcpTable(pid).some((entry) =>
      entry.state === "LISTEN" && entry.localPort === port && inodes.has(entry.inode)
    );
    if (listening) return pid;
  }
  throw new Error(`Cannot find the process listening on port ${port} among this one's children`);
}

/** A process's resident memory, in MiB. */
export function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]) / 1024;
}
