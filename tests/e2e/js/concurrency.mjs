// Many npm ConvexClients (one WebSocket each) increment one counter at once; each also
// subscribes to it. Asserted by test_e2e_concurrency.py: final value == acknowledged
// mutations, and every subscriber sees the final value.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { main, params, uniq, watch, withTimeout } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const url = process.argv[2];
  const clients = params.clients ?? 50;
  const perClient = params.perClient ?? 10;
  const name = uniq("concurrent");
  // params.urls spreads the clients over several servers (nodes of one deployment)
  const urls = params.urls ?? [url];
  const all = Array.from({ length: clients }, (_, i) => new ConvexClient(urls[i % urls.length]));
  const watches = all.map((c, i) => watch(c, api.counter.get, { name }, `client ${i}`));
  await withTimeout(Promise.all(watches.map((w) => w.until(() => true))), 30000, "first results");

  let acked = 0;
  const failures = [];
  const results = [];
  const started = Date.now();
  await Promise.all(
    all.map(async (c) => {
      for (let i = 0; i < perClient; i++) {
        try {
          results.push(await c.mutation(api.counter.increment, { name }));
          acked += 1;
        } catch (e) {
          failures.push(String(e?.message ?? e));
        }
      }
    }),
  );
  const elapsedMs = Date.now() - started;
  await withTimeout(Promise.all(watches.map((w) => w.until((v) => v === acked))), 30000, "final value everywhere");
  const final = await all[0].query(api.counter.get, { name });
  await Promise.all(all.map((c) => c.close()));
  return {
    clients,
    perClient,
    acked,
    failures: failures.slice(0, 5),
    failureCount: failures.length,
    final,
    distinctResults: new Set(results).size,
    maxResult: Math.max(...results),
    subscribersAtFinal: watches.filter((w) => w.latest === acked).length,
    elapsedMs,
  };
});
