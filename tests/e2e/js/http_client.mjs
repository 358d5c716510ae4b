// npm ConvexHttpClient: query, mutation, action, ConvexError, typed values, default export,
// internal function, wrong kind, consistentQuery. Asserted by test_e2e_js_clients.py.
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";
import { describe, main, settle, uniq } from "./lib.mjs";

const api = anyApi;

main(async () => {
  const client = new ConvexHttpClient(process.argv[2], { logger: false });
  const r = {};
  const author = uniq("http");
  r.mutation = typeof (await client.mutation(api.messages.send, { body: "via http", author }));
  r.query = describe(await client.query(api.messages.by_author, { author }));
  r.consistentQuery = describe(await client.consistentQuery(api.messages.by_author, { author }));
  r.action = describe(await client.action(api.messages.act, { x: 3 }));
  r.listLength = (await client.query(api.messages.list, {})).length;

  const typed = {
    i: 5n,
    big: -(2n ** 63n),
    b: new Uint8Array([1, 2, 3]).buffer,
    nan: NaN,
    negzero: -0,
    nested: [{ x: 7n }],
  };
  r.echoQuery = describe(await client.query(api.messages.echo, typed));
  r.echoMutation = describe(await client.mutation(api.messages.echo_mutation, typed));
  r.echoAction = describe(await client.action(api.messages.echo_action, typed));
  r.typed = describe(await client.query(api.messages.typed, {}));

  let qerr = null;
  try {
    await client.query(api.messages.fail_query, {});
  } catch (e) {
    qerr = { isConvexError: e instanceof ConvexError, data: describe(e.data) };
  }
  r.queryConvexError = qerr;
  let merr = null;
  try {
    await client.mutation(api.messages.fail_convex, { code: "HTTP" });
  } catch (e) {
    merr = { isConvexError: e instanceof ConvexError, data: describe(e.data) };
  }
  r.mutationConvexError = merr;
  r.mutationPlainError = await settle(client.mutation(api.messages.fail, {}));

  r.defaultExport = await settle(client.query(api.messages.default, {}));
  r.internalMutation = await settle(client.mutation(api.messages.secret, {}));
  r.unknownQuery = await settle(client.query(api.nope.nothing, {}));
  r.mutationOnQuery = await settle(client.mutation(api.messages.list, {}));
  r.actionOnMutation = await settle(client.action(api.messages.send, { body: "x" }));
  return r;
});
