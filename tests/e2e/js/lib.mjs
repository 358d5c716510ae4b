// Shared helpers of the e2e node scripts. Every script is run as
//   node <script>.mjs <deployment url> <JSON params>
// prints JSON lines on stdout (progress events, then one {"result": ...}) and exits 0;
// on failure it prints {"fatal": "<stack>"} and exits 1. tests/e2e/conftest.py reads them.
import WebSocket from "ws";

export const url = process.argv[2];
export const params = JSON.parse(process.argv[3] ?? "{}");

/** A unique-ish name, so tests sharing one server never see each other's rows. */
export function uniq(prefix) {
  return `${prefix}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Convex values -> plain JSON the Python side can assert on exactly. */
export function describe(v) {
  if (typeof v === "bigint") return { $bigint: v.toString() };
  if (v instanceof ArrayBuffer) return { $bytes: Array.from(new Uint8Array(v)) };
  if (typeof v === "number") {
    if (Number.isNaN(v)) return { $number: "NaN" };
    if (Object.is(v, -0)) return { $number: "-0" };
    if (!Number.isFinite(v)) return { $number: v > 0 ? "Infinity" : "-Infinity" };
    return v;
  }
  if (v === undefined) return { $undefined: true };
  if (Array.isArray(v)) return v.map(describe);
  if (v !== null && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = describe(v[k]);
    return o;
  }
  return v;
}

export function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function errorInfo(e) {
  return {
    name: e?.constructor?.name ?? typeof e,
    message: String(e?.message ?? e),
    data: e && "data" in e ? describe(e.data) : null,
    hasData: !!(e && "data" in e),
  };
}

/** Run `fn` and report its rejection (or a missing one) as a plain object. */
export async function settle(promise) {
  try {
    return { ok: true, value: describe(await promise) };
  } catch (e) {
    return { ok: false, error: errorInfo(e) };
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Entry point: run `fn`, print its return value as {"result": ...}, exit. */
export async function main(fn) {
  try {
    const result = await fn();
    out({ result: result ?? {} });
    process.exit(0);
  } catch (e) {
    out({ fatal: String(e?.stack ?? e) });
    process.exit(1);
  }
}

/**
 * The values an onUpdate/onUpdate-like subscription delivered, with `until(pred)` to wait
 * for one that matches.
 */
export class Watch {
  constructor(what) {
    this.what = what;
    this.values = [];
    this.errors = [];
    this.waiters = [];
  }

  get latest() {
    return this.values[this.values.length - 1];
  }

  onValue = (value) => {
    this.values.push(value);
    this.check();
  };

  onError = (error) => {
    this.errors.push(error);
    this.check();
  };

  check() {
    this.waiters = this.waiters.filter(({ pred, resolve }) => {
      const hit = this.values.find((v) => pred(v));
      if (hit !== undefined) {
        resolve(hit);
        return false;
      }
      return true;
    });
  }

  /** Resolve with the first delivered value (past or future) for which pred is true. */
  until(pred, ms = 20000) {
    const p = new Promise((resolve) => {
      this.waiters.push({ pred, resolve });
    });
    this.check();
    return withTimeout(p, ms, `${this.what}: no matching value (last: ${JSON.stringify(describe(this.latest))})`);
  }

  /** Resolve with the next error (past errors included). */
  untilError(ms = 20000) {
    const p = new Promise((resolve) => {
      const poll = () => (this.errors.length ? resolve(this.errors[0]) : setTimeout(poll, 5));
      poll();
    });
    return withTimeout(p, ms, `${this.what}: no error`);
  }
}

/** Subscribe with ConvexClient.onUpdate and collect the values in a Watch. */
export function watch(client, ref, args, what = "watch") {
  const w = new Watch(what);
  w.unsubscribe = client.onUpdate(ref, args, w.onValue, w.onError);
  return w;
}

/**
 * A `ws` WebSocket subclass that records every frame (for `webSocketConstructor`): lets a
 * test see what the official client actually sent and received.
 */
export function recordingWebSocket(log) {
  return class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      log.push({ dir: "open", url: String(args[0]) });
      this.addEventListener("message", (ev) => {
        try {
          log.push({ dir: "in", msg: JSON.parse(String(ev.data)) });
        } catch {
          log.push({ dir: "in", raw: String(ev.data).slice(0, 200) });
        }
      });
      this.addEventListener("close", (ev) => {
        log.push({ dir: "close", code: ev.code, reason: ev.reason });
      });
    }

    send(data) {
      try {
        log.push({ dir: "out", msg: JSON.parse(String(data)) });
      } catch {
        log.push({ dir: "out", raw: String(data).slice(0, 200) });
      }
      super.send(data);
    }
  };
}

/** Lines arriving on stdin, one promise at a time (for scripts the test steers). */
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
      if (waiting.length) waiting.shift()(line);
      else queue.push(line);
    }
  });
  return {
    next(ms = 60000) {
      const p = queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r));
      return withTimeout(p, ms, "stdin line");
    },
    close() {
      process.stdin.pause();
      process.stdin.unref?.();
    },
  };
}
