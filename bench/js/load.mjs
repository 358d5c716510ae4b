// Closed-loop load from official ConvexClients (one WebSocket each) for `seconds`:
//   {op: "mutation"}: W1, messages:send into `channel`;
//   {op: "increment"}: C1, counters:increment({name});
//   {op: "query", vary: bool}: R1 over WebSocket, messages:latest({channel[, cb]}) one-shot
//     queries (vary: a new cache-breaker per call, so no cache hit).
// Each client keeps `depth` requests in flight. Reports ok/failed counts and this process's CPU.
import { anyApi } from "convex/server";
import { cpuSeconds, main, newClient, now, params, summary } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const clients = Array.from({ length: params.clients }, () => newClient());
  await Promise.all(clients.map((c) => c.query(api.messages.top, { channel: "__warm__" })));
  const depth = params.depth ?? 1;
  let ok = 0;
  let failed = 0;
  const failures = new Map();
  const lat = [];
  let seq = 0;
  const tag = `${process.pid}`;
  const call = (c) => {
    seq += 1;
    if (params.op === "mutation") {
      return c.mutation(api.messages.send, { channel: params.channel, n: seq, body: `hello world ${tag}` });
    }
    if (params.op === "increment") return c.mutation(api.counters.increment, { name: params.name });
    const args = params.vary ? { channel: params.channel, cb: Number(tag) * 1e7 + seq } : { channel: params.channel };
    return c.query(api.messages.latest, args);
  };
  const cpu0 = cpuSeconds();
  const t0 = now();
  const end = t0 + params.seconds * 1000;
  await Promise.all(
    clients.flatMap((c) =>
      Array.from({ length: depth }, async () => {
        while (now() < end) {
          const s = now();
          try {
            await call(c);
            ok += 1;
            lat.push(now() - s);
          } catch (e) {
            failed += 1;
            const m = String(e?.message ?? e).slice(0, 160);
            failures.set(m, (failures.get(m) ?? 0) + 1);
          }
        }
      }),
    ),
  );
  const seconds = (now() - t0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  await Promise.all(clients.map((c) => c.close()));
  return {
    ok,
    failed,
    seconds,
    cpu_s: cpu,
    latency_ms: summary(lat),
    failures: Object.fromEntries([...failures.entries()].slice(0, 5)),
  };
});
