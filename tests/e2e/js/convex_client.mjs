// npm ConvexClient (WebSocket): subscriptions, mutations, errors, typed values, actions,
// default exports, internal functions, wrong kinds. Asserted by test_e2e_js_clients.py.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";
import { describe, main, recordingWebSocket, settle, uniq, watch, withTimeout } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const url = process.argv[2];
  const frames = [];
  const c1 = new ConvexClient(url, { webSocketConstructor: recordingWebSocket(frames) });
  const c2 = new ConvexClient(url);
  const r = {};

  // --- subscribe, mutate, see the update --------------------------------------------
  const author = uniq("author");
  const w = watch(c1, api.messages.by_author, { author }, "by_author");
  r.initial = describe(await w.until(() => true));

  // The mutation promise resolves only after the Transition carrying its writes: by then
  // onUpdate has already delivered the new result.
  const id = await c1.mutation(api.messages.send, { body: "hello", author });
  r.sendResultIsString = typeof id === "string";
  r.visibleWhenResolved = describe(w.latest);
  r.currentValueWhenResolved = describe(w.unsubscribe.getCurrentValue());

  // An update made by another client arrives through the subscription.
  await c2.mutation(api.messages.send, { body: "from c2", author });
  r.afterOtherClient = describe(await w.until((v) => v.includes("from c2")));
  r.valuesSeen = w.values.map(describe);

  // A one-shot query sees the same data.
  r.oneShot = describe(await c1.query(api.messages.by_author, { author }));

  // --- ConvexError from a query (one-shot and subscription) and a mutation ---------
  const qerr = await settle(c1.query(api.messages.fail_query, {}));
  r.queryConvexError = qerr;
  let qerrIsConvexError = false;
  try {
    await c1.query(api.messages.fail_query, {});
  } catch (e) {
    qerrIsConvexError = e instanceof ConvexError;
  }
  r.queryErrorInstanceOfConvexError = qerrIsConvexError;
  const failing = watch(c1, api.messages.fail_query, {}, "fail_query");
  const subErr = await failing.untilError();
  r.subscriptionConvexError = {
    isConvexError: subErr instanceof ConvexError,
    data: describe(subErr.data),
  };
  failing.unsubscribe();

  let merr = null;
  try {
    await c1.mutation(api.messages.fail_convex, { code: "E42" });
  } catch (e) {
    merr = { isConvexError: e instanceof ConvexError, data: describe(e.data), message: e.message };
  }
  r.mutationConvexError = merr;
  r.mutationPlainError = await settle(c1.mutation(api.messages.fail, {}));

  // --- typed values round trip: args and results, query, mutation, action, stored ---
  const typed = {
    i: 5n,
    big: -(2n ** 63n),
    max: 2n ** 63n - 1n,
    b: new Uint8Array([1, 2, 3, 255]).buffer,
    empty: new ArrayBuffer(0),
    nan: NaN,
    negzero: -0,
    inf: Infinity,
    ninf: -Infinity,
    f: 1.5,
    nested: { list: [1n, NaN, -0, new Uint8Array([9]).buffer], s: "x" },
  };
  r.echoQuery = describe(await c1.query(api.messages.echo, typed));
  r.echoMutation = describe(await c1.mutation(api.messages.echo_mutation, typed));
  r.echoAction = describe(await c1.action(api.messages.echo_action, typed));
  const key = uniq("vals");
  const stored = watch(c1, api.vals.get, { key }, "vals.get");
  await stored.until((v) => v === null);
  r.putResult = describe(await c1.mutation(api.vals.put, { key, value: typed }));
  r.storedViaSubscription = describe(stored.latest);
  r.typedResult = describe(await c1.query(api.messages.typed, {}));

  // --- an action that calls a query ---------------------------------------------------
  const all = await c1.query(api.messages.list, {});
  r.actionResult = describe(await c1.action(api.messages.act, { x: 7 }));
  r.listLengthBeforeAction = all.length;

  // --- a default export: api.messages.default is the name "messages" -----------------
  r.defaultExport = await settle(c1.query(api.messages.default, {}));

  // --- internal function, unknown function, wrong kind: function errors ----------------
  r.internalMutation = await settle(c1.mutation(api.messages.secret, {}));
  r.unknownQuery = await settle(c1.query(api.nope.nothing, {}));
  r.unknownMutation = await settle(c1.mutation(api.nope.nothing, {}));
  r.mutationOnQuery = await settle(c1.mutation(api.messages.list, {}));
  r.queryOnMutation = await settle(c1.query(api.messages.send, { body: "x" }));
  r.actionOnQuery = await settle(c1.action(api.messages.list, {}));
  r.argValidation = await settle(c1.mutation(api.messages.send, { body: 42 }));

  // The socket still works after all those errors, and none of them was a transport error.
  await c1.mutation(api.messages.send, { body: "after errors", author });
  r.afterErrors = describe(await withTimeout(w.until((v) => v.includes("after errors")), 10000, "after errors"));
  r.socketsOpened = frames.filter((f) => f.dir === "open").length;
  r.closes = frames.filter((f) => f.dir === "close");
  r.fatalErrors = frames.filter((f) => f.dir === "in" && f.msg.type === "FatalError");
  // The Connect/ModifyQuerySet the client sent, and the version chaining it accepted.
  r.firstClientMessage = frames.find((f) => f.dir === "out")?.msg?.type;
  r.transitions = frames.filter((f) => f.dir === "in" && f.msg.type === "Transition").length;

  await c1.close();
  await c2.close();
  return r;
});
