// N npm ConvexClients (one WebSocket each) watch the same query while another client inserts
// a few messages; after each insert the script reads the server's
// convection_query_result_encodes_total. Asserted by test_e2e_fanout.py: every subscriber saw
// the same values in the same order, and each new result was encoded once for all of them.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { describe, main, params, uniq, watch, withTimeout } from "./lib.mjs";

const api = anyApi;

async function encodes(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("convection_query_result_encodes_total "));
  return line === undefined ? null : Number(line.split(" ")[1]);
}

main(async () => {
  const url = process.argv[2];
  const clients = params.clients ?? 20;
  const bodies = params.bodies ?? ["one", "two", "three"];
  const author = uniq("fanout");
  const all = Array.from({ length: clients }, () => new ConvexClient(url));
  const watches = all.map((c, i) => watch(c, api.messages.by_author, { author }, `client ${i}`));
  await withTimeout(Promise.all(watches.map((w) => w.until((v) => Array.isArray(v)))), 30000, "first results");
  const writer = new ConvexClient(url);
  const expected = [];
  const encodeDeltas = [];
  for (const body of bodies) {
    const before = await encodes(url);
    await writer.mutation(api.messages.send, { body, author });
    expected.push(body);
    const want = JSON.stringify(expected);
    await withTimeout(Promise.all(watches.map((w) => w.until((v) => JSON.stringify(v) === want))), 30000, body);
    const after = await encodes(url);
    encodeDeltas.push(before === null || after === null ? null : after - before);
  }
  const histories = watches.map((w) =>
    w.values.filter((v, i) => i === 0 || JSON.stringify(v) !== JSON.stringify(w.values[i - 1])).map(describe),
  );
  await Promise.all([...all, writer].map((c) => c.close()));
  return { clients, expected, encodeDeltas, histories };
});
