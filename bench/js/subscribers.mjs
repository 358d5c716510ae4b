// Many subscriptions, steered over stdin (F1, S1, M1).
//   convex:   params {kind: "convex", clients, mode: "top"|"slots"|"none", channel, kStart, kCount}
//             "top": every client subscribes messages:top({channel});
//             "slots": subscriptions slots:get({k}) for k in [kStart, kStart+kCount), spread over
//             the clients; "none": connections without subscriptions.
//   pocketbase: params {kind: "pocketbase", clients}: raw SSE connections subscribed to the
//             "messages" topic of /api/realtime; a subscription's value is the created record's n.
// Prints {"ready": ...} once every subscription has its first value (convex) or every SSE
// subscription is registered (pocketbase). Then, per stdin {"cmd": "expect", "value": v,
// "keys": [...] | null}: prints {"armed": v}, and once every subscription with those keys (all
// when null) has seen a value >= v, prints {"round": v, "first", "last", "p50", "count"} with
// arrival times (epoch ms). {"cmd": "stop"} closes everything and prints the result.
import http from "node:http";
import { anyApi } from "convex/server";
import { main, newClient, now, out, params, stdinLines, url, withTimeout } from "./lib.mjs";

const api = anyApi;

class Sub {
  constructor(key) {
    this.key = key;
    this.value = undefined;
    this.first = false;
    this.onChange = null;
  }

  set(value) {
    this.value = value;
    if (!this.first) {
      this.first = true;
      readyCount += 1;
      if (readyCount === subs.length && onAllReady) onAllReady();
    }
    if (this.onChange) this.onChange(this);
  }
}

const subs = [];
let readyCount = 0;
let onAllReady = null;
const closers = [];

function allReady(ms) {
  if (readyCount === subs.length) return Promise.resolve();
  return withTimeout(new Promise((r) => (onAllReady = r)), ms, `${readyCount}/${subs.length} subscriptions ready`);
}

async function openConvex() {
  const clients = [];
  for (let i = 0; i < params.clients; i++) {
    clients.push(newClient());
    if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
  closers.push(() => Promise.all(clients.map((c) => c.close())));
  if (params.mode === "top") {
    clients.forEach((c, i) => {
      const s = new Sub(i);
      subs.push(s);
      c.onUpdate(api.messages.top, { channel: params.channel }, (v) => s.set(v ?? -1));
    });
  } else if (params.mode === "slots") {
    for (let j = 0; j < params.kCount; j++) {
      const k = params.kStart + j;
      const s = new Sub(k);
      subs.push(s);
      clients[j % clients.length].onUpdate(api.slots.get, { k }, (v) => s.set(v ?? -1));
    }
  } else {
    // Connections only: wait until each socket is open (a query round trip proves it).
    await Promise.all(clients.map((c) => c.query(api.messages.top, { channel: "__none__" })));
  }
}

function sseConnect(s) {
  // One SSE connection: PB_CONNECT gives the clientId, then subscribe it to "messages".
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/api/realtime`, { headers: { Accept: "text/event-stream" } }, (res) => {
      res.setEncoding("utf8");
      let buf = "";
      res.on("data", (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (event === "PB_CONNECT") {
            const clientId = JSON.parse(data).clientId;
            fetch(`${url}/api/realtime`, {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ clientId, subscriptions: ["messages"] }),
            }).then((r) => {
              if (r.status >= 300) reject(new Error(`subscribe: HTTP ${r.status}`));
              else {
                s.set(-1);
                resolve();
              }
            }, reject);
          } else if (event === "messages") {
            const msg = JSON.parse(data);
            if (msg.record && typeof msg.record.n === "number") s.set(msg.record.n);
          }
        }
      });
      res.on("error", () => {});
    });
    req.on("error", reject);
    closers.push(async () => req.destroy());
  });
}

async function openPocketbase() {
  const pending = [];
  for (let i = 0; i < params.clients; i++) {
    const s = new Sub(i);
    subs.push(s);
    pending.push(sseConnect(s));
    if (i % 100 === 99) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}

main(async () => {
  const t0 = now();
  const errors = [];
  process.on("unhandledRejection", (e) => errors.push(String(e?.message ?? e)));
  if (params.kind === "pocketbase") await openPocketbase();
  else await openConvex();
  await allReady(params.readyTimeoutMs ?? 300000);
  out({ ready: { subscriptions: subs.length, seconds: (now() - t0) / 1000 } });
  const byKey = new Map(subs.map((s) => [s.key, s]));
  const lines = stdinLines();
  let rounds = 0;
  for (;;) {
    const msg = await lines.next();
    if (msg.cmd === "stop") break;
    if (msg.cmd !== "expect") continue;
    const target = msg.value;
    const watched = msg.keys ? msg.keys.filter((k) => byKey.has(k)).map((k) => byKey.get(k)) : subs;
    const times = [];
    let left = watched.length;
    const done = new Promise((resolve) => {
      if (left === 0) resolve();
      for (const s of watched) {
        s.onChange = (sub) => {
          if (sub.value >= target && sub.onChange) {
            times.push(now());
            sub.onChange = null;
            left -= 1;
            if (left === 0) resolve();
          }
        };
      }
    });
    out({ armed: target });
    try {
      await withTimeout(done, msg.timeoutMs ?? 60000, `round ${target}: ${left} of ${watched.length} not updated`);
    } catch (e) {
      for (const s of watched) s.onChange = null;
      out({ round: target, timeout: true, missing: left, count: watched.length });
      continue;
    }
    times.sort((a, b) => a - b);
    rounds += 1;
    out({
      round: target,
      count: times.length,
      first: times[0] ?? null,
      p50: times.length ? times[Math.floor(times.length / 2)] : null,
      last: times.length ? times[times.length - 1] : null,
    });
  }
  await Promise.race([Promise.all(closers.map((c) => c())), new Promise((r) => setTimeout(r, 3000))]);
  return { rounds, errors: errors.slice(0, 5) };
});
