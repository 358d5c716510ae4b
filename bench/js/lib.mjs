// Shared helpers of the bench node scripts. Every script is run as
//   node <script>.mjs <server url> <JSON params>
// and prints JSON lines on stdout: events, then one {"result": ...}; on failure
// {"fatal": "..."} and exit 1. Scripts steered by bench/run.py read JSON lines on stdin.
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { ConvexClient } from "convex/browser";

export const url = process.argv[2];
export const params = JSON.parse(process.argv[3] ?? "{}");

/** Wall-clock milliseconds with sub-millisecond resolution (comparable across processes). */
export function now() {
  return performance.timeOrigin + performance.now();
}

export function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** CPU seconds this process used so far (user + system). */
export function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function newClient(u = url) {
  return new ConvexClient(u, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return {
    count: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1] : null,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : null,
  };
}

/** Entry point: run `fn`, print its return value as {"result": ...}, exit. */
export async function main(fn) {
  try {
    const result = await fn();
    out({ result: result ?? {}, cpu_s: cpuSeconds() });
    process.exit(0);
  } catch (e) {
    out({ fatal: String(e?.stack ?? e) });
    process.exit(1);
  }
}

/** JSON lines arriving on stdin, one promise at a time. */
export function stdinLines() {
  const queue = [];
  const waiting = [];
  let buffer = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, i).trim();
      buffer = buffer.slice(i + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (waiting.length) waiting.shift()(msg);
      else queue.push(msg);
    }
  });
  process.stdin.on("end", () => {
    while (waiting.length) waiting.shift()({ cmd: "stop" });
    queue.push({ cmd: "stop" });
  });
  return {
    next() {
      return queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r));
    },
  };
}
