// L1 observe-insert latency: one subscriber, `count` paced inserts; for each, the time from
// sending the insert to receiving the updated result.
//   {kind: "convex", count, gapMs, channel}: ConvexClient A watches messages:top({channel}),
//     ConvexClient B sends messages:send({channel, n: i}); latency until A's onUpdate sees i.
//   {kind: "pocketbase", count, gapMs, channel}: the PocketBase JS SDK subscribes to
//     "messages" (SSE), creates records with n = i; latency until the SSE event for i arrives.
//   {kind: "echo", count, gapMs}: a WebSocket to a bare echo server; latency = round trip.
import WebSocket from "ws";
import { anyApi } from "convex/server";
import { main, newClient, now, params, sleep, summary, url, withTimeout } from "./lib.mjs";

const api = anyApi;

function waiter() {
  let resolve;
  const p = new Promise((r) => (resolve = r));
  return { p, resolve };
}

async function convex() {
  const sub = newClient();
  const pub = newClient();
  let current = -1;
  let wake = null;
  sub.onUpdate(api.messages.top, { channel: params.channel }, (v) => {
    current = v ?? -1;
    if (wake) wake();
  });
  const start = (await pub.query(api.messages.top, { channel: params.channel })) ?? 0;
  const seen = (target) =>
    current >= target ? Promise.resolve() : new Promise((r) => (wake = () => current >= target && r()));
  await withTimeout(seen(start === 0 ? -1 : start), 10000, "first result");
  const lat = [];
  for (let i = 1; i <= params.count; i++) {
    const n = start + i;
    const t0 = now();
    const w = seen(n);
    pub.mutation(api.messages.send, { channel: params.channel, n, body: "l1" });
    await withTimeout(w, 10000, `update ${n}`);
    lat.push(now() - t0);
    await sleep(params.gapMs);
  }
  await sub.close();
  await pub.close();
  return lat;
}

async function pocketbase() {
  const { EventSource } = await import("eventsource");
  globalThis.EventSource = EventSource;
  const PocketBase = (await import("pocketbase")).default;
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  let wake = null;
  const seen = new Set();
  await pb.collection("messages").subscribe("*", (e) => {
    if (e.action === "create" && e.record.channel === params.channel) {
      seen.add(e.record.n);
      if (wake) wake(e.record.n);
    }
  });
  const lat = [];
  for (let i = 1; i <= params.count; i++) {
    const t0 = now();
    const w = new Promise((r) => (wake = (n) => n === i && r()));
    pb.collection("messages").create({ channel: params.channel, n: i, body: "l1" });
    await withTimeout(w, 10000, `event ${i}`);
    lat.push(now() - t0);
    await sleep(params.gapMs);
  }
  await pb.realtime.unsubscribe();
  return lat;
}

async function echo() {
  const ws = new WebSocket(url);
  await new Promise((r, j) => {
    ws.on("open", r);
    ws.on("error", j);
  });
  let w = waiter();
  ws.on("message", () => w.resolve());
  const lat = [];
  const payload = JSON.stringify({ type: "Transition", modifications: [{ type: "QueryUpdated", value: 1 }] });
  for (let i = 1; i <= params.count; i++) {
    w = waiter();
    const t0 = now();
    ws.send(payload);
    await withTimeout(w.p, 10000, `echo ${i}`);
    lat.push(now() - t0);
    await sleep(params.gapMs);
  }
  ws.close();
  return lat;
}

main(async () => {
  const kinds = { convex, pocketbase, echo };
  const lat = await kinds[params.kind]();
  return { ...summary(lat) };
});
