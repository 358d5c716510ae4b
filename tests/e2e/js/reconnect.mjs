// A server crash and restart under a connected npm ConvexClient (steered by
// test_e2e_reconnect.py through stdin):
//   1. subscribe a counter and a set of pages; grow page 0 with an insert (its end is now
//      fixed only by the journal);
//   2. fire a burst of increments, print {"phase": "fired"}; the test SIGKILLs the server at
//      once and starts it again on the same port and data directory, then writes "restarted";
//   3. the client reconnects by itself, re-adds its queries with their journals and re-sends
//      unacknowledged mutations with the same requestIds; the server de-duplicates them.
// Reports the mutation results, the counter, the pages and the frames that matter.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { main, out, params, recordingWebSocket, stdinLines, uniq, watch, withTimeout } from "./lib.mjs";

const api = anyApi;
const ns = (result) => result.page.map((doc) => doc.n);

main(async () => {
  const url = process.argv[2];
  const stdin = stdinLines();
  const n = params.n ?? 100;
  const name = uniq("reconnect");
  const list = uniq("rlist");
  const frames = [];
  const client = new ConvexClient(url, { webSocketConstructor: recordingWebSocket(frames) });
  const http = new ConvexHttpClient(url, { logger: false });
  const r = { n, name };

  await http.mutation(api.entries.add, { list, ns: [10, 20, 30, 40, 50, 60, 70, 80, 90] });
  const counter = watch(client, api.counter.get, { name }, "counter");
  await counter.until((v) => v === 0);
  const pages = [];
  const subscribePage = (cursor) =>
    pages.push(watch(client, api.entries.page, { list, paginationOpts: { numItems: 3, cursor, id: 1 } }, `page ${pages.length}`));
  subscribePage(null);
  for (;;) {
    const last = await pages[pages.length - 1].until(() => true);
    if (last.isDone) break;
    subscribePage(last.continueCursor);
  }
  await http.mutation(api.entries.add, { list, ns: [15] });
  await pages[0].until((v) => ns(v).includes(15));
  r.pagesBefore = pages.map((p) => ({ ns: ns(p.latest), continueCursor: p.latest.continueCursor }));

  // The burst. Every promise must settle exactly once, with a distinct counter value.
  const results = new Array(n).fill(null);
  let acked = 0;
  const burst = [];
  for (let i = 0; i < n; i++) {
    burst.push(
      client.mutation(api.counter.increment, { name, pauseMs: 5 }).then(
        (value) => {
          results[i] = value;
          acked += 1;
        },
        (e) => {
          results[i] = { error: String(e?.message ?? e) };
        },
      ),
    );
  }
  const opensBefore = frames.filter((f) => f.dir === "open").length;
  // Let the server answer a few first, so the crash lands in the middle of the burst:
  // some mutations acknowledged, some answered but not yet confirmed by a Transition, some
  // committed but unanswered, some not yet run.
  const killAfter = params.killAfter ?? 10;
  const responses = () => frames.filter((f) => f.dir === "in" && f.msg.type === "MutationResponse").length;
  await withTimeout(
    new Promise((resolve) => {
      const poll = () => (responses() >= killAfter ? resolve() : setTimeout(poll, 1));
      poll();
    }),
    30000,
    "first mutation responses",
  );
  out({ phase: "fired", ackedAtKill: acked, responsesAtKill: responses() });
  const line = await stdin.next(60000);
  if (line !== "restarted") throw new Error(`unexpected stdin line ${line}`);
  r.ackedWhenRestarted = acked;

  await withTimeout(Promise.all(burst), 60000, "all mutations settled");
  await counter.until((v) => v === n, 30000);
  r.results = results;
  r.acked = acked;
  r.counterSeen = counter.latest;

  // Pages resume from their journals: page 0 keeps its grown end (10, 15, 20, 30) after the
  // restart; an insert now still lands inside page 1 without moving any boundary.
  await http.mutation(api.entries.add, { list, ns: [55] });
  await pages[1].until((v) => ns(v).includes(55), 20000);
  r.pagesAfter = pages.map((p) => ({ ns: ns(p.latest), continueCursor: p.latest.continueCursor }));
  r.counterViaHttp = await http.query(api.counter.get, { name });

  // What went over the wire.
  const opens = frames.map((f, i) => [f, i]).filter(([f]) => f.dir === "open").map(([, i]) => i);
  r.socketsOpened = opens.length;
  r.opensBefore = opensBefore;
  const lastOpen = opens[opens.length - 1];
  const before = frames.slice(0, lastOpen);
  const after = frames.slice(lastOpen);
  const outOf = (fs, type) => fs.filter((f) => f.dir === "out" && f.msg.type === type).map((f) => f.msg);
  const inOf = (fs, type) => fs.filter((f) => f.dir === "in" && f.msg.type === type).map((f) => f.msg);
  r.connects = outOf(frames, "Connect").map((m) => ({
    sessionId: m.sessionId,
    connectionCount: m.connectionCount,
    lastCloseReason: m.lastCloseReason,
  }));
  const sentBefore = new Set(outOf(before, "Mutation").map((m) => m.requestId));
  const answeredBefore = new Set(inOf(before, "MutationResponse").map((m) => m.requestId));
  const resent = outOf(after, "Mutation").map((m) => m.requestId).filter((id) => sentBefore.has(id));
  r.mutationsSentBefore = sentBefore.size;
  r.responsesBefore = answeredBefore.size;
  r.resentRequestIds = resent.length;
  r.resentAlreadyAnswered = resent.filter((id) => answeredBefore.has(id)).length;
  const readds = outOf(after, "ModifyQuerySet").flatMap((m) => m.modifications).filter((m) => m.type === "Add");
  r.readdedPages = readds.filter((m) => m.udfPath.startsWith("entries:page")).length;
  r.readdedPagesWithJournal = readds.filter((m) => m.udfPath.startsWith("entries:page") && typeof m.journal === "string").length;
  r.fatalErrors = inOf(frames, "FatalError");

  stdin.close();
  await client.close();
  return r;
});
