"""Regenerate docs/errors.md: every stable error code in the source, where it comes from, and
what it means. Descriptions live in DESCRIPTIONS below (keep them short and actionable)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DESCRIPTIONS = {
    "AdminError": "An admin operation failed (see the message).",
    "BackendClosed": "A TestBackend was used after close().",
    "BadRequest": "An admin HTTP request is malformed (missing or invalid parameter).",
    "CallDepthExceeded": "Nested run_query/run_mutation calls went deeper than MAX_CALL_DEPTH_COUNT.",
    "CodegenError": "Codegen could not produce types for a validator or folder.",
    "DatabaseError": "A misuse of the database API (see the message).",
    "DataDirectoryInUse": "Another process (named in the message) owns the data directory: a second server, or a CLI command while one works in-process.",
    "EnvVarNotFound": "No environment variable with that name.",
    "ImportFormatError": "An import file could not be parsed; the message names the line or entry.",
    "ImportPartOutOfOrder": "A streaming import part arrived out of order (HTTP 409); the CLI sends them in order.",
    "ImportSessionNotFound": "No such streaming import in progress: it finished, failed (and was undone) or idled out (HTTP 404).",
    "ImportTableNotEmpty": "Import into a table that has documents without --append or --replace.",
    "InternalError": "An unexpected server error (the sync connection closes with 1011).",
    "InvalidArgument": "A count or option has the wrong type or range (e.g. take(-1)).",
    "InvalidCronJob": "crons.py defines an invalid job (name, schedule, target).",
    "InvalidCronSchedule": "A cron schedule cannot be computed.",
    "InvalidDeployBundle": "A deploy upload is not a valid functions folder ZIP.",
    "InvalidEnvVarName": "An environment variable name is invalid (letters, digits, _; starts with a letter; at most 40).",
    "InvalidEnvVarValue": "An environment variable value is too large.",
    "InvalidFilter": "A filter expression is invalid (use q.and_/q.or_/q.not_, comparable types).",
    "InvalidFunctionDefinition": "A decorator was used on something that cannot be that kind of function.",
    "InvalidFunctionPath": "A function path does not follow the module:function grammar.",
    "InvalidFunctionReference": "A reference could not be turned into a function path.",
    "InvalidHttpRoute": "http.py defines an invalid route.",
    "InvalidImportMode": "Unknown import mode (use append or replace).",
    "InvalidPaginationLimit": "maximumRowsRead/maximumBytesRead must be positive.",
    "InvalidPaginationOpts": "paginate() options are not {numItems, cursor}.",
    "InvalidQuery": "A query is built wrongly (with_index twice, bad order, run twice).",
    "InvalidScheduledJobState": "A scheduled job document is in an unexpected state.",
    "InvalidSchedulerCall": "ctx.scheduler got a bad delay, time or target.",
    "InvalidTable": "A system-table API was used on a user table or vice versa.",
    "InvalidTableName": "A table name is not a non-empty string.",
    "InvalidTimestamp": "A timestamp on the wire is not 8 base64 bytes.",
    "InvalidTransaction": "A transaction was committed twice.",
    "MutationTimeout": "A mutation still conflicting after its retries could not enter the serialized lane within MUTATION_SERIAL_WAIT_MS; retry it later.",
    "NoDocumentsForPagination": "paginate() with numItems 0 and no end cursor.",
    "PageSizeTooLarge": "numItems is larger than the read limit.",
    "PaginationError": "A pagination misuse (see the message).",
    "ResultTooLarge": "A function returned more than MAX_FUNCTION_RESULT_SIZE_BYTES.",
    "ScheduledFunctionArgumentsTooLarge": "One scheduled function's arguments are too large.",
    "ScheduledFunctionsArgumentsTooLarge": "A mutation scheduled too many bytes of arguments in total.",
    "SchedulerNotSettled": "finish_scheduled_functions() found work left after its round limit.",
    "StorageUnavailable": "The store failed a write (database down or restarting, disk full); the commit was not applied. Retryable: HTTP 503 JSON, the sync socket closes 1013 and the client re-sends. Writes resume by themselves; `GET /health` says when.",
    "StorageVersionMismatch": "The store (SQLite file or PostgreSQL schema) was written by a newer convection.",
    "SystemFunctionError": "A built-in _system/frontend:* function (the dashboard's) got arguments it cannot use.",
    "SubscriptionClosed": "A TestBackend subscription was used after close().",
    "TableNotFound": "No table with that name.",
    "TooManyFunctionsScheduled": "A mutation scheduled more than 1000 functions.",
    "TooManyRounds": "finish_scheduled_functions() hit max_rounds with work still pending.",
    "Unauthorized": "The admin API or /metrics needs credentials (admin key / metrics token).",
    "UploadTooLarge": "An admin upload (import, deploy) is over its size limit.",
    "WSMessageInvalidJson": "A WebSocket frame is not valid JSON (FatalError, then close).",
    "InvalidValue": "A value is not a Convex value (unsupported type, bad field name).",
    "ValidationError": "A value does not match its validator (arguments, return value, schema); the message names the field path.",
    "ArgumentValidationError": "A function's arguments do not match its `args=` validators.",
    "ReturnsValidationError": "A function's return value does not match its `returns=` validator.",
    "InvalidSchema": "The schema is invalid, or existing documents do not match a new schema.",
    "InvalidId": "A string is not a document id of this deployment, or of the expected table.",
    "LimitExceeded": "A size or count limit was exceeded (see knobs).",
    "FunctionNotFound": "No public function at that path (or an internal one called without admin rights).",
    "WrongFunctionKind": "A query was called as a mutation, etc.",
    "ModuleLoadError": "A module of the functions folder failed to import; the message names file and line.",
    "OptimisticConcurrencyControlFailure": "A transaction conflicted with a concurrent commit; mutations retry automatically.",
    "OutOfRetention": "A snapshot older than the retention window was requested.",
    "TooEarly": "A snapshot newer than the latest commit was requested.",
    "StorageFailure": "The store failed and the commit path stopped (a bug in the writer, or shutting down); restart the server.",
    "WriteInQuery": "A query tried to write; use a mutation.",
    "SystemTable": "User code touched a system table (`_`-prefixed) through the user API.",
    "NotFound": "The document to patch/replace/delete does not exist.",
    "IndexNotFound": "`with_index`, `with_search_index` or `ctx.vector_search` names an index that is not declared for the table.",
    "IndexNotReady": "The index is still backfilling (or is staged).",
    "InvalidIndexRange": "An index range does not follow the index fields in order.",
    "UniqueQueryMultipleResults": "`.unique()` matched more than one document.",
    "InvalidCursor": "A pagination cursor is malformed or belongs to another query; clients restart pagination.",
    "MultiplePaginatedDatabaseQueries": "A function called `paginate` twice.",
    "TooManyDocumentsRead": "A transaction read more documents than allowed; use an index or paginate.",
    "TooManyBytesRead": "A transaction read more bytes than allowed.",
    "TooManyReads": "A transaction made too many index range reads.",
    "TooManyWrites": "A mutation wrote too many documents.",
    "TooManyBytesWritten": "A mutation wrote too many bytes.",
    "DocumentTooLarge": "A document is larger than 1 MiB.",
    "NestingTooDeep": "A value is nested too deeply.",
    "TooManyFields": "An object has too many fields.",
    "ArrayTooLong": "An array has too many elements.",
    "FunctionTimeout": "A function ran past its time limit.",
    "BadJsonBody": "An HTTP request body is not valid JSON.",
    "BadFormat": "Unknown `format` in an HTTP request.",
    "InvalidAuthHeader": "The Authorization header or token is invalid.",
    "NoAuthProvider": "No auth provider matches the token.",
    "BadAdminKey": "The admin key is invalid for this deployment.",
    "InvalidAuthConfig": "`auth_config.py` has an invalid provider; the message names the provider and field.",
    "TokenExpired": "The user's JWT expired; clients fetch a fresh token.",
    "FunctionError": "A function failed (see the message).",
    "MissingSearchFilterError": "`with_search_index` without `q.search(field, text)`.",
    "DuplicateSearchFiltersError": "`with_search_index` with more than one `q.search(...)`.",
    "IncorrectSearchField": "`q.search(field, ...)` names a field other than the index's search field.",
    "IncorrectFilterFieldError": "`q.eq(field, ...)` in a search names a field that is not a filter field of the index.",
    "TooManyFilterConditionsInSearchQueryError": "A search has more than 8 `q.eq` conditions.",
    "InvalidSearchQuery": "A search's builder or text is invalid (the text must be a string).",
    "SearchQueryTooManyResults": "A search consumed more than 1024 results; use `take`, paginate or filter fields.",
    "InvalidVectorQuery": "A `ctx.vector_search` call is invalid (vector length, limit 1-256, filter).",
}


EXTRA = {"InvalidAuthHeader": "convection.auth.verifier", "NoAuthProvider": "convection.auth.verifier", "TokenExpired": "convection.auth.verifier"}


def collect() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for code, module in EXTRA.items():
        found[code].add(module)
    for path in sorted((ROOT / "src" / "convection").rglob("*.py")):
        rel = path.relative_to(ROOT / "src").with_suffix("").as_posix().replace("/", ".")
        for code in re.findall(r'\bcode\s*=\s*"([A-Z][A-Za-z]+)"', path.read_text()):
            found[code].add(rel)
    return found


def existing_descriptions() -> dict[str, str]:
    """Descriptions already written in docs/errors.md (kept when DESCRIPTIONS has none)."""
    path = ROOT / "docs" / "errors.md"
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"\| `([A-Za-z]+)` \| (.*?) \|", line)
            if m and m.group(2).strip():
                out[m.group(1)] = m.group(2).strip()
    return out


def render() -> str:
    kept = existing_descriptions()
    lines = [
        "# Errors",
        "",
        "Every error convection raises carries a stable `code`; messages say what was wrong, where",
        "(table, field path, function) and what to do. Function errors reach clients as the",
        "function's error (HTTP 200 `status: \"error\"`, `QueryFailed`, a failed",
        "`MutationResponse`); `ConvexError(data)` raised by your code reaches them with its data.",
        "",
        "This page is generated by `scripts/gen_errors_doc.py`; a test keeps it complete.",
        "",
        "| code | meaning | raised in |",
        "|---|---|---|",
    ]
    for code, modules in sorted(collect().items()):
        desc = DESCRIPTIONS.get(code) or kept.get(code, "")
        lines.append(f"| `{code}` | {desc} | {', '.join(sorted(modules))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "errors.md").write_text(render())
