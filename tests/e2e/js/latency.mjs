// Insert -> subscriber latency on loopback: client A subscribes to the newest ping of a run;
// client B inserts pings one at a time (paced); for each we time from just before B's
// mutation call until A's onUpdate shows the new row, and until B's mutation promise
// resolves. Printed (not asserted) by test_e2e_latency.py.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { performance } from "node:perf_hooks";
import { main, params, sleep, uniq, withTimeout } from "./lib.mjs";

const api = anyApi;

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return {
    count: s.length,
    p50: q(50),
    p90: q(90),
    p99: q(99),
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

main(async () => {
  const url = process.argv[2];
  const count = params.count ?? 300;
  const paceMs = params.paceMs ?? 5;
  const warmup = params.warmup ?? 20;
  const run = uniq("latency");
  const subscriber = new ConvexClient(url);
  const writer = new ConvexClient(url);

  let waiting = null;
  subscriber.onUpdate(api.pings.latest, { run }, (seq) => {
    if (waiting && seq === waiting.seq) {
      waiting.resolve(performance.now());
      waiting = null;
    }
  });
  await subscriber.query(api.pings.latest, { run });
  await writer.query(api.pings.latest, { run });

  const toSubscriber = [];
  const mutationRoundTrip = [];
  for (let seq = 1; seq <= count + warmup; seq++) {
    const seen = new Promise((resolve) => {
      waiting = { seq, resolve };
    });
    const t0 = performance.now();
    const done = writer.mutation(api.pings.send, { run, seq }).then(() => performance.now());
    const [t1, t2] = await withTimeout(Promise.all([seen, done]), 10000, `ping ${seq}`);
    if (seq > warmup) {
      toSubscriber.push(t1 - t0);
      mutationRoundTrip.push(t2 - t0);
    }
    await sleep(paceMs);
  }
  await Promise.all([subscriber.close(), writer.close()]);
  const round = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 100) / 100]));
  return {
    paceMs,
    insertToSubscriberMs: round(stats(toSubscriber)),
    mutationRoundTripMs: round(stats(mutationRoundTrip)),
  };
});
