"""Built-in system functions (``_system/frontend:*``): the queries and mutations the dashboard
reads and writes data through (docs/internals/overview.md: no private path).

They are ordinary functions: the runner resolves a path under ``_system/`` here instead of in
the loaded app, and runs it like any other (validation, transaction, OCC retries, call log,
subscriptions). They are ``internal``, so only an admin key (or the engine itself) may call
them, over HTTP (``/api/query``, ``/api/mutation``, ``/api/function``) or the sync protocol
(``Authenticate`` with ``tokenType: "Admin"``, then ``ModifyQuerySet`` / ``Mutation``).

Writes go through ``ctx.db`` like a user mutation's: every insert, replace, patch and delete is
validated against the schema in force, and a document that breaks it is refused with the
validator's message (nothing is written).

| path | kind | args | returns |
|---|---|---|---|
| ``_system/frontend:tables`` | query | | ``[{"name", "count", "more"}]`` every user table (schema tables too) |
| ``_system/frontend:documents`` | query | ``table``, ``index?``, ``order?``, ``filters?``, ``paginationOpts`` | a page ``{"page", "continueCursor", "isDone"}`` |
| ``_system/frontend:files`` | query | ``paginationOpts`` | a page of ``_storage`` rows, each with its ``url`` |
| ``_system/frontend:insert`` | mutation | ``table``, ``document`` | the new id |
| ``_system/frontend:replace`` | mutation | ``id``, ``document`` | null |
| ``_system/frontend:patch`` | mutation | ``id``, ``fields`` | null |
| ``_system/frontend:delete`` | mutation | ``ids`` | the number deleted |
| ``_system/frontend:generateUploadUrl`` | mutation | | an upload URL |
| ``_system/frontend:deleteFile`` | mutation | ``storageId`` | null |

``filters`` is a list of ``{"field", "op", "value"}`` with ``op`` one of ``eq``, ``neq``,
``lt``, ``lte``, ``gt``, ``gte``; they are ANDed (a document filter, not an index range).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convection import knobs
from convection.errors import ConvectionError
from convection.functions.context import catalog_view
from convection.functions.decorators import ConvexFunction, FunctionKind
from convection.functions.loader import FunctionSpec
from convection.functions.paths import canonical_path
from convection.schema.builders import as_args_validator, v

PREFIX = "_system/"
MODULE = "_system/frontend"
FILTER_OPS = ("eq", "neq", "lt", "lte", "gt", "gte")


class SystemFunctionError(ConvectionError):
    """A system function was called with arguments it cannot use (unknown table, bad filter)."""

    code = "SystemFunctionError"


_PAGINATION = v.object({"numItems": v.float64(), "cursor": v.union(v.string(), v.null())})


def _user_table(ctx: Any, table: str) -> str:
    if not isinstance(table, str) or not table or table.startswith("_"):
        raise SystemFunctionError(f"{table!r} is not a user table", code="InvalidTable")
    return table


def tables(ctx: Any) -> list[dict[str, Any]]:
    """Every user table with its document count. The counts are reactive (a subscriber sees
    them change with every write) and bounded: a table's newest documents are counted up to
    ``DASHBOARD_COUNT_MAX_DOCUMENTS_COUNT`` (less when many tables share the transaction's read
    budget); a larger table answers that number with ``"more": true``."""
    catalog = catalog_view(ctx)
    names = catalog.user_table_names()
    budget = knobs.TRANSACTION_MAX_READ_ROWS_COUNT // (2 * max(len(names), 1))
    cap = max(1, min(knobs.DASHBOARD_COUNT_MAX_DOCUMENTS_COUNT, budget))
    out = []
    for name in names:
        seen = len(ctx.db.query(name).order("desc").take(cap + 1)) if catalog.table_exists(name) else 0
        out.append({"name": name, "count": min(seen, cap), "more": seen > cap})
    return out


def documents(
    ctx: Any,
    table: str,
    paginationOpts: dict[str, Any],
    index: str | None = None,
    order: str | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One page of ``table``, in ``index`` order (default ``by_creation_time``), filtered."""
    table = _user_table(ctx, table)
    if not catalog_view(ctx).table_exists(table):
        return {"page": [], "continueCursor": "", "isDone": True}
    q = ctx.db.query(table)
    if index:
        q = q.with_index(index)
    q = q.order(order or "desc")
    conditions = list(filters or [])
    for f in conditions:
        if not isinstance(f, dict) or f.get("op") not in FILTER_OPS or not isinstance(f.get("field"), str) or not f["field"]:
            raise SystemFunctionError(
                f"Bad filter {f!r}: expected {{field, op, value}} with op one of {', '.join(FILTER_OPS)}",
                code="InvalidFilter",
            )
    if conditions:
        q = q.filter(lambda b: b.and_(*(getattr(b, c["op"])(b.field(c["field"]), c.get("value")) for c in conditions)))
    result: dict[str, Any] = q.paginate(paginationOpts)
    return result


def files(ctx: Any, paginationOpts: dict[str, Any]) -> dict[str, Any]:
    """A page of stored files, newest first: ``_storage`` rows plus a ``url``."""
    page: dict[str, Any] = ctx.db.system.query("_storage").order("desc").paginate(paginationOpts)
    page["page"] = [{**row, "url": ctx.storage.get_url(row["_id"])} for row in page["page"]]
    return page


def insert(ctx: Any, table: str, document: dict[str, Any]) -> str:
    doc = {k: val for k, val in document.items() if k not in ("_id", "_creationTime")}
    new_id: str = ctx.db.insert(_user_table(ctx, table), doc)
    return new_id


def _check_user_doc(ctx: Any, id: str) -> None:
    table = catalog_view(ctx).table_of_id(id)
    if table is None or table.startswith("_"):
        raise SystemFunctionError(f"{id!r} is not the id of a document in a user table", code="InvalidId")


def replace(ctx: Any, id: str, document: dict[str, Any]) -> None:
    _check_user_doc(ctx, id)
    ctx.db.replace(id, {k: val for k, val in document.items() if k not in ("_id", "_creationTime")})


def patch(ctx: Any, id: str, fields: dict[str, Any]) -> None:
    _check_user_doc(ctx, id)
    ctx.db.patch(id, fields)


def delete(ctx: Any, ids: list[str]) -> int:
    for doc_id in ids:
        _check_user_doc(ctx, doc_id)
        ctx.db.delete(doc_id)
    return len(ids)


def generate_upload_url(ctx: Any) -> str:
    url: str = ctx.storage.generate_upload_url()
    return url


def delete_file(ctx: Any, storageId: str) -> None:
    ctx.storage.delete(storageId)


_DOCUMENT = v.record(v.string(), v.any())


def _spec(name: str, kind: FunctionKind, handler: Callable[..., Any], args: dict[str, Any]) -> FunctionSpec:
    fn = ConvexFunction(handler, kind=kind, visibility="internal", args_validator=as_args_validator(args))
    path = f"{MODULE}:{name}"
    fn.path = path
    return FunctionSpec(path, fn, MODULE, name, "convection/functions/system.py", None)


SYSTEM_FUNCTIONS: dict[str, FunctionSpec] = {
    s.path: s
    for s in (
        _spec("tables", "query", tables, {}),
        _spec(
            "documents",
            "query",
            documents,
            {
                "table": v.string(),
                "paginationOpts": _PAGINATION,
                "index": v.optional(v.union(v.string(), v.null())),
                "order": v.optional(v.union(v.literal("asc"), v.literal("desc"), v.null())),
                "filters": v.optional(v.array(v.any())),
            },
        ),
        _spec("files", "query", files, {"paginationOpts": _PAGINATION}),
        _spec("insert", "mutation", insert, {"table": v.string(), "document": _DOCUMENT}),
        _spec("replace", "mutation", replace, {"id": v.string(), "document": _DOCUMENT}),
        _spec("patch", "mutation", patch, {"id": v.string(), "fields": _DOCUMENT}),
        _spec("delete", "mutation", delete, {"ids": v.array(v.string())}),
        _spec("generateUploadUrl", "mutation", generate_upload_url, {}),
        _spec("deleteFile", "mutation", delete_file, {"storageId": v.string()}),
    )
}


def system_function(path: str) -> FunctionSpec | None:
    """The built-in function at ``path`` (``_system/...``), or None."""
    try:
        return SYSTEM_FUNCTIONS.get(canonical_path(path))
    except ConvectionError:
        return None
