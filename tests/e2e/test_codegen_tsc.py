"""`convection codegen` output type-checks with the real TypeScript compiler and the official
npm `convex` package: a client file importing `api` from `./convex/_generated/api` and `Doc`/`Id`
from `./convex/_generated/dataModel` compiles under `--strict`, and the `@ts-expect-error` lines
(wrong argument types, a wrong function name, an internal function through `api`, a wrong result
type) prove the types are precise rather than `any` (an unused `@ts-expect-error` fails tsc).

Runs codegen through the real entry point (`python -m convection codegen`) on a copy of
tests/e2e/app/convex plus one module with returns validators, in a temporary folder (nothing is
written into the repository), with tests/e2e/js/node_modules symlinked beside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
APP_DIR = E2E_DIR / "app" / "convex"
JS_DIR = E2E_DIR / "js"

pytestmark = pytest.mark.e2e

TYPED_MODULE = '''
"""Functions with returns validators, for the typed client of test_codegen_tsc."""

from convection import Int64, action, internal_mutation, mutation, query, v

MESSAGE = v.object({
    "_id": v.id("messages"),
    "_creationTime": v.number(),
    "body": v.string(),
    "author": v.optional(v.string()),
})


@query(args={}, returns=v.array(MESSAGE))
def list_messages(ctx):
    return ctx.db.query("messages").collect()


@query(args={"id": v.id("messages")}, returns=v.union(MESSAGE, v.null()))
def get_message(ctx, id):
    return ctx.db.get(id)


@mutation(args={"body": v.string(), "author": v.optional(v.string())}, returns=v.id("messages"))
def send(ctx, body, author=None):
    return ctx.db.insert("messages", {"body": body} if author is None else {"body": body, "author": author})


@query(
    args={
        "n": v.number(), "f": v.float64(), "i": v.int64(), "b": v.bytes(), "flag": v.boolean(),
        "nothing": v.null(), "tags": v.array(v.string()), "scores": v.record(v.string(), v.number()),
        "kind": v.union(v.literal("a"), v.literal("b")), "answer": v.literal(42),
        "big": v.literal(Int64(7)), "anything": v.any(), "nested": v.object({"x": v.optional(v.number())}),
        "counter": v.id("counters"), "maybe": v.optional(v.string()),
    },
    returns=v.object({"i": v.int64(), "b": v.bytes(), "ids": v.array(v.id("counters"))}),
)
def kinds(ctx, **args):
    return {"i": args["i"], "b": args["b"], "ids": [args["counter"]]}


@action(args={"x": v.number()}, returns=v.null())
async def ping(ctx, x):
    return None


@internal_mutation(args={}, returns=v.string())
def hidden(ctx):
    return "hidden"
'''

CLIENT_TS = """
import { ConvexClient } from "convex/browser";
import type { FunctionReturnType } from "convex/server";
import { api, internal } from "./convex/_generated/api";
import type { Doc, Id } from "./convex/_generated/dataModel";
import type { MutationCtx, QueryCtx } from "./convex/_generated/server";

export async function run(client: ConvexClient): Promise<void> {
  // messages.list has no returns validator: its result is `any`, as in Convex.
  const untyped = await client.query(api.messages.list, {});
  await client.mutation(api.messages.send, { body: "hi", author: "me" });
  await client.mutation(api.messages.send, { body: "hi" });

  const messages: Doc<"messages">[] = await client.query(api.typed_api.list_messages, {});
  const id: Id<"messages"> = await client.mutation(api.typed_api.send, { body: "hi" });
  const one: Doc<"messages"> | null = await client.query(api.typed_api.get_message, { id });
  const counter = "c" as Id<"counters">;
  const result: { i: bigint; b: ArrayBuffer; ids: Id<"counters">[] } = await client.query(api.typed_api.kinds, { n: 1, f: 1.5, i: 5n, b: new ArrayBuffer(1), flag: true, nothing: null, tags: ["x"], scores: { a: 1 }, kind: "a", answer: 42, big: 7n, anything: { any: [1] }, nested: {}, counter });
  const nothing: null = await client.action(api.typed_api.ping, { x: 1 });
  const hidden: FunctionReturnType<typeof internal.typed_api.hidden> = "x";
  client.onUpdate(api.typed_api.list_messages, {}, (docs) => {
    const body: string | undefined = docs[0]?.body;
    void body;
  });

  // @ts-expect-error `body` must be a string
  await client.mutation(api.messages.send, { body: 5 });
  // @ts-expect-error `body` is required
  await client.mutation(api.typed_api.send, {});
  // @ts-expect-error an id of another table
  await client.query(api.typed_api.get_message, { id: counter });
  // @ts-expect-error int64 arguments are bigints
  await client.query(api.typed_api.kinds, { n: 1, f: 1.5, i: 5, b: new ArrayBuffer(1), flag: true, nothing: null, tags: [], scores: {}, kind: "a", answer: 42, big: 7n, anything: 1, nested: {}, counter });
  // @ts-expect-error not one of the literals
  await client.query(api.typed_api.kinds, { n: 1, f: 1.5, i: 5n, b: new ArrayBuffer(1), flag: true, nothing: null, tags: [], scores: {}, kind: "c", answer: 42, big: 7n, anything: 1, nested: {}, counter });
  // @ts-expect-error no such function
  await client.query(api.messages.no_such_function, {});
  // @ts-expect-error no such module
  await client.query(api.no_such_module.list, {});
  // @ts-expect-error internal functions are not part of `api`
  await client.mutation(api.messages.secret, {});
  // @ts-expect-error a query is not a mutation
  await client.mutation(api.typed_api.list_messages, {});
  // @ts-expect-error the result is an array of documents, not a string
  const wrong: string = await client.query(api.typed_api.list_messages, {});
  // @ts-expect-error `_id` of a message is not an id of counters
  const wrongId: Id<"counters"> = messages[0]._id;
  // @ts-expect-error not a table of the schema
  type NoTable = Doc<"no_such_table">;

  void [untyped, one, result, nothing, hidden, wrong, wrongId];
}

export async function serverSide(ctx: QueryCtx, mctx: MutationCtx): Promise<number> {
  const rows = await ctx.db
    .query("counters")
    .withIndex("by_name", (q) => q.eq("name", "x"))
    .collect();
  const doc: Doc<"counters"> | undefined = rows[0];
  // @ts-expect-error no such index
  ctx.db.query("counters").withIndex("by_nothing");
  // @ts-expect-error documents of counters have no field `body`
  await mctx.db.insert("counters", { name: "x", n: 1, body: "no" });
  return doc === undefined ? 0 : doc.n;
}
"""

TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "bundler",
        "lib": ["ES2022", "DOM"],
        "types": [],
        "strict": True,
        "noEmit": True,
        "skipLibCheck": False,
    },
    "files": ["client.ts", "convex/_generated/api.d.ts", "convex/_generated/dataModel.d.ts",
              "convex/_generated/server.d.ts"],
}


def _typescript_installed() -> bool:
    return (JS_DIR / "node_modules" / "typescript" / "package.json").exists() and (
        JS_DIR / "node_modules" / "convex" / "package.json"
    ).exists()


@pytest.fixture(scope="module")
def npx() -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the TypeScript check needs it")
    npm, npx = shutil.which("npm"), shutil.which("npx")
    if npm is None or npx is None:
        pytest.fail("node is installed but npm/npx is not: cannot install tests/e2e/js")
    if not _typescript_installed():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0 or not _typescript_installed():
            pytest.fail(f"npm ci failed in {JS_DIR}:\n{done.stdout}\n{done.stderr}")
    return npx


def _codegen(functions: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convection", "codegen", "--functions", str(functions)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )


def test_generated_types_check_with_tsc(npx: str, tmp_path: Path) -> None:
    repo_generated = APP_DIR / "_generated"
    existed_before = repo_generated.exists()
    functions = tmp_path / "convex"
    shutil.copytree(APP_DIR, functions, ignore=shutil.ignore_patterns("_generated", "__pycache__"))
    (functions / "typed_api.py").write_text(TYPED_MODULE.lstrip())

    first = _codegen(functions, tmp_path)
    assert first.returncode == 0, first.stderr
    for name in ("api.d.ts", "api.js", "dataModel.d.ts", "server.d.ts", "server.js", "data_model.py"):
        assert f"wrote convex/_generated/{name}" in first.stdout
        assert (functions / "_generated" / name).is_file()
    again = _codegen(functions, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout and "wrote" not in again.stdout
    assert repo_generated.exists() == existed_before

    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules", target_is_directory=True)
    (tmp_path / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (tmp_path / "client.ts").write_text(textwrap.dedent(CLIENT_TS).lstrip())
    tsc = subprocess.run(
        [npx, "--no-install", "tsc", "-p", "tsconfig.json", "--noEmit", "--strict"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert tsc.returncode == 0, f"tsc failed:\n{tsc.stdout}\n{tsc.stderr}"
