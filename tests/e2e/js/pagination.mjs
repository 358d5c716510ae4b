// Pagination with the usePaginatedQuery contract (PROTOCOL.md §6) through ConvexClient
// subscriptions:
//  A. driven by hand, page by page, exactly as usePaginatedQuery does it (first page
//     {numItems, cursor: null, id}, loadMore with continueCursor, a split with
//     endCursor/splitCursor), while another client inserts rows inside the pages;
//  B. the client library's own paginated client (onPaginatedUpdate_experimental), whose
//     frames are recorded to check what it sent.
// Asserted by test_e2e_pagination.py.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { main, recordingWebSocket, uniq, watch, withTimeout } from "./lib.mjs";

const api = anyApi;
const ns = (result) => result.page.map((doc) => doc.n);

function summary(result) {
  return {
    ns: ns(result),
    isDone: result.isDone,
    continueCursor: result.continueCursor,
    splitCursor: result.splitCursor ?? null,
    pageStatus: result.pageStatus ?? null,
  };
}

main(async () => {
  const url = process.argv[2];
  const frames = [];
  const reader = new ConvexClient(url, { webSocketConstructor: recordingWebSocket(frames) });
  const writer = new ConvexClient(url);
  const r = {};

  // ---- A. the contract by hand ------------------------------------------------------
  const list = uniq("pages");
  await writer.mutation(api.entries.add, { list, ns: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120] });
  const id = 1;
  const pages = [];
  const subscribePage = (opts, what) => {
    const w = watch(reader, api.entries.page, { list, paginationOpts: { ...opts, id } }, what);
    w.opts = opts;
    return w;
  };
  // First page, then loadMore until isDone.
  pages.push(subscribePage({ numItems: 3, cursor: null }, "page 0"));
  for (;;) {
    const last = await pages[pages.length - 1].until(() => true);
    if (last.isDone) break;
    pages.push(subscribePage({ numItems: 3, cursor: last.continueCursor }, `page ${pages.length}`));
    if (pages.length > 10) throw new Error("too many pages");
  }
  r.initialPages = pages.map((p) => summary(p.latest));

  const firstValueCounts = () => pages.map((p) => p.values.length);
  const before = pages.map((p) => summary(p.latest));

  // Another client inserts inside page 1 (45), before everything (5, page 0) and after
  // everything (125, the last page). Each page containing an insert grows; the others keep
  // their rows; no boundary (continueCursor) moves.
  await writer.mutation(api.entries.add, { list, ns: [45] });
  await pages[1].until((v) => ns(v).includes(45));
  await writer.mutation(api.entries.add, { list, ns: [5, 125] });
  await pages[0].until((v) => ns(v).includes(5));
  await pages[pages.length - 1].until((v) => ns(v).includes(125));
  r.afterInserts = pages.map((p) => summary(p.latest));
  r.boundariesBefore = before.map((p) => p.continueCursor);
  r.valueCounts = firstValueCounts();

  // Page 1 grows past 2 * numItems: split it like the client does, with its splitCursor.
  await writer.mutation(api.entries.add, { list, ns: [41, 42, 43, 44] });
  const big = await pages[1].until((v) => ns(v).includes(44));
  r.bigPage = summary(big);
  const startCursor = pages[1].opts.cursor;
  const half1 = subscribePage({ numItems: 3, cursor: startCursor, endCursor: big.splitCursor }, "split 1");
  const half2 = subscribePage({ numItems: 3, cursor: big.splitCursor, endCursor: big.continueCursor }, "split 2");
  const [h1, h2] = await Promise.all([half1.until(() => true), half2.until(() => true)]);
  r.splitHalves = [summary(h1), summary(h2)];
  pages[1].unsubscribe();
  pages.splice(1, 1, half1, half2);
  // An insert into the second half lands there only.
  await writer.mutation(api.entries.add, { list, ns: [46] });
  await half2.until((v) => ns(v).includes(46));
  r.afterSplitInsert = pages.map((p) => summary(p.latest));
  r.allRows = await reader.query(api.entries.ns, { list });
  r.concatenated = pages.flatMap((p) => ns(p.latest));

  // Every page result carried a journal (self-contained; re-sent after reconnects).
  const updates = frames
    .filter((f) => f.dir === "in" && f.msg.type === "Transition")
    .flatMap((f) => f.msg.modifications)
    .filter((m) => m.type === "QueryUpdated" && m.value && typeof m.value === "object" && "continueCursor" in m.value);
  r.pageUpdates = updates.length;
  r.pageUpdatesWithJournal = updates.filter((m) => typeof m.journal === "string" && m.journal.length > 0).length;
  const adds = frames
    .filter((f) => f.dir === "out" && f.msg.type === "ModifyQuerySet")
    .flatMap((f) => f.msg.modifications)
    .filter((m) => m.type === "Add" && m.udfPath.startsWith("entries:page"));
  r.sentPaginationOpts = adds.map((m) => m.args[0].paginationOpts);

  // A tampered cursor is an InvalidCursor error (what makes usePaginatedQuery restart).
  const bad = watch(reader, api.entries.page, { list, paginationOpts: { numItems: 3, cursor: "garbage", id } }, "bad cursor");
  const badErr = await bad.untilError();
  r.invalidCursor = { message: badErr.message, data: badErr.data ?? null };
  bad.unsubscribe();

  // ---- B. the library's own paginated client ----------------------------------------
  const frames2 = [];
  const pclient = new ConvexClient(url, { webSocketConstructor: recordingWebSocket(frames2) });
  const list2 = uniq("lib");
  await writer.mutation(api.entries.add, { list: list2, ns: [10, 20, 30, 40, 50, 60, 70] });
  let latest = null;
  let wake = () => {};
  const sub = pclient.onPaginatedUpdate_experimental(
    api.entries.page,
    { list: list2 },
    { initialNumItems: 2 },
    (value) => {
      latest = value;
      wake();
    },
    (e) => {
      latest = { error: String(e) };
      wake();
    },
  );
  const until = (pred, what) =>
    withTimeout(
      new Promise((resolve) => {
        const check = () => {
          if (latest && !latest.error && pred(latest)) resolve(latest);
        };
        wake = check;
        check();
      }),
      20000,
      `${what} (latest: ${JSON.stringify(latest && { results: latest.results?.map((d) => d.n), status: latest.status, error: latest.error })})`,
    );
  const rs = (v) => v.results.map((d) => d.n);
  const statuses = [];
  let v = await until((x) => x.status === "CanLoadMore", "first page");
  statuses.push({ results: rs(v), status: v.status });
  v.loadMore(3);
  v = await until((x) => x.results.length === 5 && x.status === "CanLoadMore", "loadMore(3)");
  statuses.push({ results: rs(v), status: v.status });
  v.loadMore(10);
  v = await until((x) => x.status === "Exhausted", "loadMore(10)");
  statuses.push({ results: rs(v), status: v.status });
  // Grow the first page past 2 * initialNumItems: the client splits it.
  await writer.mutation(api.entries.add, { list: list2, ns: [11, 12, 13, 14, 15] });
  v = await until((x) => x.results.length === 12, "inserts");
  statuses.push({ results: rs(v), status: v.status });
  const sent = () =>
    frames2
      .filter((f) => f.dir === "out" && f.msg.type === "ModifyQuerySet")
      .flatMap((f) => f.msg.modifications)
      .filter((m) => m.type === "Add")
      .map((m) => m.args[0].paginationOpts);
  // Wait until the split pages are in use (both sent and answered).
  const deadline = Date.now() + 10000;
  while (!sent().some((o) => o.endCursor) && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 20));
  }
  await pclient.mutation(api.entries.add, { list: list2, ns: [16] });
  v = await until((x) => x.results.length === 13, "insert after split");
  statuses.push({ results: rs(v), status: v.status });
  r.library = { statuses, sentPaginationOpts: sent() };
  sub();

  await Promise.all([reader.close(), writer.close(), pclient.close()]);
  return r;
});
