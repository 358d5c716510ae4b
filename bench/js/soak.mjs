// M1 soak: for `seconds`, `clients` ConvexClients each watch messages:top({channel}) and a
// per-client messages:latest({channel, cb}) whose cb changes every second, cycling through 10
// values per client (query-set churn over a bounded set of queries);
// one client is closed and replaced every second (connection churn); a publisher inserts at
// `rate` per second. Reports counts.
import { anyApi } from "convex/server";
import { main, newClient, now, params, sleep } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const mk = (i) => {
    const c = newClient();
    const entry = { c, updates: 0, unsubs: [] };
    entry.unsubs.push(c.onUpdate(api.messages.top, { channel: params.channel }, () => (entry.updates += 1)));
    entry.cb = i;
    entry.unsubs.push(c.onUpdate(api.messages.latest, { channel: params.channel, cb: i }, () => {}));
    return entry;
  };
  const clients = Array.from({ length: params.clients }, (_, i) => mk(i));
  const pub = newClient();
  let inserted = 0;
  let failed = 0;
  let reconnects = 0;
  let updates = 0;
  const t0 = now();
  const end = t0 + params.seconds * 1000;
  const publisher = (async () => {
    let n = 0;
    while (now() < end) {
      const s = now();
      try {
        await pub.mutation(api.messages.send, { channel: params.channel, n: ++n, body: "soak" });
        inserted += 1;
      } catch {
        failed += 1;
      }
      const wait = 1000 / params.rate - (now() - s);
      if (wait > 0) await sleep(wait);
    }
  })();
  let tick = 0;
  while (now() < end) {
    await sleep(1000);
    tick += 1;
    for (let i = 0; i < clients.length; i++) {
      const e = clients[i];
      e.unsubs[1]();
      // Arguments cycle through a fixed set (10 per client), so the set of distinct queries
      // (and the query cache) stays bounded: any steady growth of the server is a leak.
      e.cb = (e.cb + clients.length) % (clients.length * 10);
      e.unsubs[1] = e.c.onUpdate(api.messages.latest, { channel: params.channel, cb: e.cb }, () => {});
    }
    const victim = tick % clients.length;
    updates += clients[victim].updates;
    await clients[victim].c.close();
    clients[victim] = mk(victim);
    reconnects += 1;
  }
  await publisher;
  for (const e of clients) updates += e.updates;
  await Promise.all([...clients.map((e) => e.c.close()), pub.close()]);
  return { inserted, failed, reconnects, updates, seconds: (now() - t0) / 1000 };
});
