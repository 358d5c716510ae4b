// npm ConvexReactClient under Node, with `webSocketConstructor` from the `ws` package:
// watchQuery().onUpdate + localQueryResult, mutations (plain and with an optimistic update).
// Asserted by test_e2e_js_clients.py.
import { ConvexReactClient } from "convex/react";
import { anyApi } from "convex/server";
import WebSocket from "ws";
import { describe, main, uniq, withTimeout } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const client = new ConvexReactClient(process.argv[2], {
    webSocketConstructor: WebSocket,
    unsavedChangesWarning: false,
  });
  const r = {};
  const author = uniq("react");
  const args = { author };
  const watch = client.watchQuery(api.messages.by_author, args);
  const seen = [];
  let notify = () => {};
  const unsubscribe = watch.onUpdate(() => {
    seen.push(describe(watch.localQueryResult()));
    notify();
  });
  const until = (pred, what) =>
    withTimeout(
      new Promise((resolve) => {
        const check = () => {
          const v = watch.localQueryResult();
          if (v !== undefined && pred(v)) resolve(v);
        };
        notify = check;
        check();
      }),
      15000,
      what,
    );

  r.initial = describe(await until(() => true, "first result"));

  await client.mutation(api.messages.send, { body: "one", author });
  r.afterMutation = describe(watch.localQueryResult());

  // An optimistic update shows at once; when the mutation resolves the server's value has
  // replaced it (no duplicate "two").
  let optimisticSeen = null;
  const pending = client.mutation(
    api.messages.send,
    { body: "two", author },
    {
      optimisticUpdate: (store, mArgs) => {
        const cur = store.getQuery(api.messages.by_author, args);
        if (cur !== undefined) store.setQuery(api.messages.by_author, args, [...cur, mArgs.body]);
      },
    },
  );
  optimisticSeen = describe(watch.localQueryResult());
  await pending;
  r.optimisticSeen = optimisticSeen;
  r.afterOptimisticMutation = describe(watch.localQueryResult());

  // A one-shot query through the same client.
  r.oneShot = describe(await client.query(api.messages.by_author, args));
  r.action = describe(await client.action(api.messages.echo_action, { n: 1n }));
  r.seen = seen;
  unsubscribe();
  await client.close();
  return r;
});
