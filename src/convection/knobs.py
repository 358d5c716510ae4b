"""Every tunable of convection, in one place.

Each knob has a unit in its name (``_ms``, ``_bytes``, ``_count``), a default, a doc line, and
can be overridden by the environment variable ``CONVECTION_<NAME>`` (read once, at import).
``docs/knobs.md`` lists them all; a test keeps that page complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    name: str
    default: float | int
    doc: str


KNOBS: dict[str, Knob] = {}


def _knob(name: str, default: int, doc: str) -> int:
    KNOBS[name] = Knob(name, default, doc)
    raw = os.environ.get("CONVECTION_" + name)
    if raw is None or raw == "":
        return default
    try:
        return int(float(raw))
    except ValueError as exc:  # pragma: no cover - a misconfiguration at start-up
        raise SystemExit(f"CONVECTION_{name}={raw!r} is not a number") from exc


# --- values -----------------------------------------------------------------------------
MAX_VALUE_SIZE_BYTES = _knob("MAX_VALUE_SIZE_BYTES", 1 << 25, "Largest single value (32 MiB).")
MAX_DOCUMENT_SIZE_BYTES = _knob(
    "MAX_DOCUMENT_SIZE_BYTES", 1 << 20, "Largest stored document, system fields included (1 MiB)."
)
MAX_OBJECT_FIELDS_COUNT = _knob("MAX_OBJECT_FIELDS_COUNT", 1024, "Most fields in one object.")
MAX_ARRAY_LENGTH_COUNT = _knob("MAX_ARRAY_LENGTH_COUNT", 8192, "Most elements in one array.")
MAX_VALUE_NESTING_COUNT = _knob("MAX_VALUE_NESTING_COUNT", 64, "Deepest nesting of a value.")
MAX_DOCUMENT_NESTING_COUNT = _knob(
    "MAX_DOCUMENT_NESTING_COUNT", 16, "Deepest nesting of a stored document."
)
MAX_FIELD_NAME_LENGTH_COUNT = _knob("MAX_FIELD_NAME_LENGTH_COUNT", 1024, "Longest field name.")
MAX_FUNCTION_ARGS_SIZE_BYTES = _knob(
    "MAX_FUNCTION_ARGS_SIZE_BYTES", 16 << 20, "Largest argument object of a call (16 MiB)."
)
MAX_FUNCTION_RESULT_SIZE_BYTES = _knob(
    "MAX_FUNCTION_RESULT_SIZE_BYTES", 16 << 20, "Largest return value of a call (16 MiB)."
)

# --- schema -----------------------------------------------------------------------------
MAX_INDEX_FIELDS_COUNT = _knob("MAX_INDEX_FIELDS_COUNT", 16, "Most fields in one index.")
MAX_INDEXES_PER_TABLE_COUNT = _knob("MAX_INDEXES_PER_TABLE_COUNT", 32, "Most indexes per table.")
MAX_SEARCH_INDEXES_PER_TABLE_COUNT = _knob(
    "MAX_SEARCH_INDEXES_PER_TABLE_COUNT", 4, "Most search indexes per table."
)
MAX_VECTOR_INDEXES_PER_TABLE_COUNT = _knob(
    "MAX_VECTOR_INDEXES_PER_TABLE_COUNT", 4, "Most vector indexes per table."
)
MAX_FILTER_FIELDS_COUNT = _knob(
    "MAX_FILTER_FIELDS_COUNT", 16, "Most filter fields of a search or vector index."
)

# --- full-text and vector search (convection/search, convection/vector) -----------------
MAX_TEXT_TERM_LENGTH_BYTES = _knob(
    "MAX_TEXT_TERM_LENGTH_BYTES",
    32,
    "Tokens of this many UTF-8 bytes or more are dropped by the search tokenizer (as Tantivy's RemoveLongFilter).",
)
MAX_SEARCH_QUERY_TERMS_COUNT = _knob(
    "MAX_SEARCH_QUERY_TERMS_COUNT", 16, "Terms of a search query used; the rest are silently dropped."
)
MAX_SEARCH_PREFIX_MATCHES_COUNT = _knob(
    "MAX_SEARCH_PREFIX_MATCHES_COUNT", 16, "Index terms the last (prefix) query term expands to."
)
MAX_SEARCH_FILTER_CONDITIONS_COUNT = _knob(
    "MAX_SEARCH_FILTER_CONDITIONS_COUNT", 8, "Most .eq() filter conditions of one search query."
)
MAX_SEARCH_CANDIDATES_COUNT = _knob(
    "MAX_SEARCH_CANDIDATES_COUNT",
    1024,
    "Most search results one query may consume (collect() of more fails; paginate instead).",
)
SEARCH_STATS_COMPACT_MIN_COUNT = _knob(
    "SEARCH_STATS_COMPACT_MIN_COUNT",
    256,
    "Maintenance compacts a search index's statistics (each term's entries older than twice SNAPSHOT_RETENTION_MS into one) once this many commits' worth accumulated.",
)
SEARCH_EXACT_POSTINGS_COUNT = _knob(
    "SEARCH_EXACT_POSTINGS_COUNT",
    4096,
    "A multi-term search whose terms have at most this many postings in all scores every one of them; above it, the best results are found in score order without reading them all.",
)
VECTOR_EXACT_MAX_COUNT = _knob(
    "VECTOR_EXACT_MAX_COUNT",
    10_000,
    "A vector search over at most this many candidates (all documents, or those a filter allows) is exact; above it, the HNSW graph is searched.",
)
VECTOR_EXPANSION_SEARCH_COUNT = _knob(
    "VECTOR_EXPANSION_SEARCH_COUNT",
    128,
    "HNSW search breadth (usearch expansion_search, at least 2 x limit): higher is slower and closer to exact.",
)
VECTOR_SAVE_AFTER_COUNT = _knob(
    "VECTOR_SAVE_AFTER_COUNT",
    10_000,
    "Changes applied to a vector index after which it is saved to disk again (it is also saved at maintenance and on close).",
)
MAX_VECTOR_RESULTS_COUNT = _knob("MAX_VECTOR_RESULTS_COUNT", 256, "Largest `limit` of ctx.vector_search.")
MAX_VECTOR_FILTER_TERMS_COUNT = _knob(
    "MAX_VECTOR_FILTER_TERMS_COUNT", 64, "Most equality terms in a ctx.vector_search filter."
)

# --- transactions -----------------------------------------------------------------------
TRANSACTION_MAX_READ_ROWS_COUNT = _knob(
    "TRANSACTION_MAX_READ_ROWS_COUNT", 32000, "Most documents one transaction may scan."
)
TRANSACTION_MAX_READ_BYTES = _knob(
    "TRANSACTION_MAX_READ_BYTES", 16 << 20, "Most bytes one transaction may read (16 MiB)."
)
TRANSACTION_MAX_READ_INTERVALS_COUNT = _knob(
    "TRANSACTION_MAX_READ_INTERVALS_COUNT", 4096, "Most index ranges/gets one transaction may read."
)
TRANSACTION_MAX_WRITES_COUNT = _knob(
    "TRANSACTION_MAX_WRITES_COUNT", 16000, "Most documents one transaction may write."
)
TRANSACTION_MAX_WRITE_BYTES = _knob(
    "TRANSACTION_MAX_WRITE_BYTES", 16 << 20, "Most bytes one transaction may write (16 MiB)."
)
MUTATION_MAX_OCC_RETRIES_COUNT = _knob(
    "MUTATION_MAX_OCC_RETRIES_COUNT", 4, "Retries of a mutation after a write conflict."
)
MUTATION_SERIAL_WAIT_MS = _knob(
    "MUTATION_SERIAL_WAIT_MS",
    30_000,
    "A mutation still conflicting after its retries runs alone in the serialized lane (holding "
    "this process's commit order, so it cannot conflict with its commits); this is how long it "
    "may wait for the lane before failing with MutationTimeout.",
)
MUTATION_LANE_RETRY_MS = _knob(
    "MUTATION_LANE_RETRY_MS",
    10_000,
    "In the serialized lane only commits of other processes sharing the store can still "
    "conflict with a mutation; after as many retries there as before it, it keeps retrying "
    "(jittered backoff up to 80 ms) for this long before it fails. 0: fail after those retries.",
)
MUTATION_OCC_BACKOFF_INITIAL_MS = _knob(
    "MUTATION_OCC_BACKOFF_INITIAL_MS", 10, "First retry backoff cap (full jitter, doubling)."
)
MUTATION_OCC_BACKOFF_MAX_MS = _knob(
    "MUTATION_OCC_BACKOFF_MAX_MS", 2000, "Largest retry backoff cap."
)
WRITE_LOG_RETENTION_MS = _knob(
    "WRITE_LOG_RETENTION_MS", 60_000, "How long published commits stay in the in-memory write log."
)
WORKER_RESTART_DELAY_MS = _knob(
    "WORKER_RESTART_DELAY_MS", 1000,
    "serve --workers: how long the supervisor waits before starting a worker that died again.",
)
LOG_TAIL_POLL_MS = _knob(
    "LOG_TAIL_POLL_MS", 5,
    "How often an idle process checks whether other processes sharing the store committed, "
    "when the store gives no commit notifications (LOG_TAIL_NOTIFY=0, or SQLite on a "
    "platform without abstract Unix sockets: a PRAGMA data_version check; PostgreSQL: a "
    "commit-log query); 0 turns this polling off.",
)
LOG_TAIL_NOTIFY = _knob(
    "LOG_TAIL_NOTIFY", 1,
    "1 = a process hears of other processes' commits when they happen (PostgreSQL: "
    "LISTEN/NOTIFY on a dedicated connection; SQLite on Linux: a datagram from each local "
    "process that committed) and polls only every LOG_TAIL_FALLBACK_POLL_MS; 0 = it polls "
    "every LOG_TAIL_POLL_MS (e.g. behind a pooler that cannot LISTEN).",
)
LOG_TAIL_FALLBACK_POLL_MS = _knob(
    "LOG_TAIL_FALLBACK_POLL_MS", 500,
    "With LOG_TAIL_NOTIFY=1: how often an idle process still reads the commit log, for a "
    "lost notification or while the notification channel is down; 0 turns it off.",
)
GROUP_COMMIT_MAX_BATCH_COUNT = _knob(
    "GROUP_COMMIT_MAX_BATCH_COUNT", 256, "Most commits persisted in one SQL transaction."
)
SNAPSHOT_RETENTION_MS = _knob(
    "SNAPSHOT_RETENTION_MS",
    5 * 60_000,
    "How far back snapshot reads (query_at_ts, old transactions) are served; older index "
    "revisions are pruned.",
)
DOCUMENT_RETENTION_MS = _knob(
    "DOCUMENT_RETENTION_MS",
    2 * 24 * 3600_000,
    "How long superseded document revisions are kept in the document log.",
)

MAINTENANCE_INTERVAL_MS = _knob(
    "MAINTENANCE_INTERVAL_MS",
    60_000,
    "How often retention (pruning superseded revisions) and the SQLite checkpoint run; 0 = never.",
)

MUTATION_RESULT_RETENTION_MS = _knob(
    "MUTATION_RESULT_RETENTION_MS",
    3600_000,
    "How long a WebSocket mutation's result is kept to answer a resend after reconnect.",
)

# --- functions --------------------------------------------------------------------------
QUERY_TIMEOUT_MS = _knob("QUERY_TIMEOUT_MS", 1000 * 15, "Time limit of one query or mutation.")
ACTION_TIMEOUT_MS = _knob("ACTION_TIMEOUT_MS", 10 * 60_000, "Time limit of one action.")
MAX_LOG_LINES_COUNT = _knob("MAX_LOG_LINES_COUNT", 256, "Log lines kept per function call.")
MAX_LOG_LINE_LENGTH_COUNT = _knob(
    "MAX_LOG_LINE_LENGTH_COUNT", 32768, "Characters kept per log line."
)
MAX_CALL_DEPTH_COUNT = _knob("MAX_CALL_DEPTH_COUNT", 8, "Deepest nesting of run_query/run_mutation.")
FUNCTION_WORKER_THREADS_COUNT = _knob(
    "FUNCTION_WORKER_THREADS_COUNT", 16, "Threads that run queries and mutations."
)

INLINE_CALL_MAX_US = _knob(
    "INLINE_CALL_MAX_US",
    2000,
    "A query or mutation whose recent runs each took at most this many microseconds of work "
    "runs on the event loop itself (a mutation's commit is awaited, not waited on by a "
    "thread) instead of a worker thread: no thread hand-off. A run that takes longer sends its "
    "function back to the worker pool until it has been fast again. 0 runs every call in the "
    "worker pool.",
)
FUNCTION_MAX_THREADS_PER_PATH_COUNT = _knob(
    "FUNCTION_MAX_THREADS_PER_PATH_COUNT",
    8,
    "Worker threads the calls of one function path may hold at once (at most half the pool); "
    "more calls of it wait, holding no thread, so a stuck or CPU-bound function leaves the "
    "rest of the pool to other functions.",
)

GC_GEN0_THRESHOLD_COUNT = _knob(
    "GC_GEN0_THRESHOLD_COUNT",
    50_000,
    "Allocations between young-generation garbage collections in the server process "
    "(Python's default is 700; see bench/RESULTS.md).",
)

# --- HTTP ---------------------------------------------------------------------------------
HTTP_REQUEST_IDLE_TIMEOUT_MS = _knob(
    "HTTP_REQUEST_IDLE_TIMEOUT_MS",
    30_000,
    "An HTTP connection that receives nothing for this long while the server waits for the "
    "client (no request yet, or a request head or body not complete) is closed.",
)
HTTP_MAX_BODY_OVERHEAD_BYTES = _knob(
    "HTTP_MAX_BODY_OVERHEAD_BYTES",
    64 << 10,
    "A function call's HTTP body may exceed MAX_FUNCTION_ARGS_SIZE_BYTES by this much (path, "
    "format, JSON encoding); larger bodies are refused with 413 ArgumentsTooLarge unread.",
)
QUERY_CACHE_MAX_BYTES = _knob(
    "QUERY_CACHE_MAX_BYTES",
    128 << 20,
    "Estimated memory of the shared query cache (arguments, results as bytes and values, "
    "encoded results, ~12 KiB per entry); least recently used entries go first.",
)

# --- sync (WebSocket protocol) ----------------------------------------------------------
SYNC_HEARTBEAT_INTERVAL_MS = _knob(
    "SYNC_HEARTBEAT_INTERVAL_MS",
    15_000,
    "An app-level Ping is sent after this long without any outbound message on a socket.",
)
SYNC_MAX_UNSENT_TRANSITIONS_COUNT = _knob(
    "SYNC_MAX_UNSENT_TRANSITIONS_COUNT",
    2,
    "A socket computes no new Transition while this many are queued unsent (back-pressure).",
)
SYNC_MAX_QUEUED_MUTATIONS_COUNT = _knob(
    "SYNC_MAX_QUEUED_MUTATIONS_COUNT",
    1000,
    "Mutations waiting to run on one socket; more closes it (1013 TooManyConcurrentMutations).",
)
SYNC_MAX_INFLIGHT_ACTIONS_COUNT = _knob(
    "SYNC_MAX_INFLIGHT_ACTIONS_COUNT",
    1000,
    "Actions running at once for one socket; more closes it (1013 TooManyConcurrentActions).",
)
SYNC_QUERY_CONCURRENCY_COUNT = _knob(
    "SYNC_QUERY_CONCURRENCY_COUNT", 20, "Queries one socket reruns at once for a Transition."
)
SYNC_MAX_MESSAGE_SIZE_BYTES = _knob(
    "SYNC_MAX_MESSAGE_SIZE_BYTES",
    64 << 20,
    "Largest inbound WebSocket message; larger closes the socket (1009 MessageTooBig).",
)
SYNC_OUTBOX_MAX_BYTES = _knob(
    "SYNC_OUTBOX_MAX_BYTES",
    32 << 20,
    "Bytes one socket may have queued unsent (responses, Transitions, pings); a client that "
    "stops reading past it is closed (1013 OutboxFull) and its queue is dropped.",
)
SYNC_CLOSE_TIMEOUT_MS = _knob(
    "SYNC_CLOSE_TIMEOUT_MS",
    5_000,
    "How long a closing socket may take to send its last messages (FatalError, AuthError).",
)
SYNC_CONNECT_TIMEOUT_MS = _knob(
    "SYNC_CONNECT_TIMEOUT_MS",
    30_000,
    "A WebSocket that has not sent Connect this long after opening is closed (1000 ConnectTimeout).",
)
SYNC_MAX_QUERIES_PER_MODIFY_COUNT = _knob(
    "SYNC_MAX_QUERIES_PER_MODIFY_COUNT",
    1000,
    "Most Add/Remove entries in one ModifyQuerySet; more is a FatalError (TooManyQueries).",
)
SYNC_MAX_QUERIES_PER_SOCKET_COUNT = _knob(
    "SYNC_MAX_QUERIES_PER_SOCKET_COUNT",
    5000,
    "Most live queries in one socket's query set; more is a FatalError (TooManyQueries).",
)
SYNC_MAX_OBSERVED_TS_AHEAD_MS = _knob(
    "SYNC_MAX_OBSERVED_TS_AHEAD_MS",
    60_000,
    "A Connect whose maxObservedTimestamp is above the latest commit but at most this far "
    "ahead of the wall clock moves the commit clock past it; further ahead closes the socket "
    "(1011 InternalServerError, as the reference server does).",
)

# --- persistence (SQLite) ---------------------------------------------------------------
SQLITE_BUSY_TIMEOUT_MS = _knob(
    "SQLITE_BUSY_TIMEOUT_MS", 5000, "How long a SQLite connection waits for a lock before failing."
)
SQLITE_PRUNE_BATCH_COUNT = _knob(
    "SQLITE_PRUNE_BATCH_COUNT",
    1000,
    "Rows deleted per write transaction by retention (bounds how long it blocks commits).",
)
SQLITE_VACUUM_PAGES_COUNT = _knob(
    "SQLITE_VACUUM_PAGES_COUNT",
    2000,
    "Most free pages one checkpoint returns to the file system (incremental vacuum).",
)

# --- auth (JWT verification) ------------------------------------------------------------
AUTH_CLOCK_LEEWAY_MS = _knob(
    "AUTH_CLOCK_LEEWAY_MS",
    5_000,
    "Clock skew tolerated on a token's exp and nbf claims.",
)
AUTH_CACHE_TTL_MS = _knob(
    "AUTH_CACHE_TTL_MS",
    30_000,
    "How long a verified token's identity is reused without verifying it again (never past exp).",
)
AUTH_CACHE_SIZE_COUNT = _knob(
    "AUTH_CACHE_SIZE_COUNT", 1000, "Verified tokens remembered (least recently used go first)."
)
AUTH_JWKS_CACHE_TTL_MS = _knob(
    "AUTH_JWKS_CACHE_TTL_MS",
    3_600_000,
    "How long fetched JWKS keys (and OIDC discovery documents) are used before fetching again.",
)
AUTH_JWKS_MIN_REFETCH_INTERVAL_MS = _knob(
    "AUTH_JWKS_MIN_REFETCH_INTERVAL_MS",
    10_000,
    "Shortest time between two fetches of one JWKS when a token names an unknown key id.",
)
AUTH_JWKS_FETCH_TIMEOUT_MS = _knob(
    "AUTH_JWKS_FETCH_TIMEOUT_MS", 10_000, "Time limit of one JWKS or OIDC discovery request."
)
AUTH_JWKS_MAX_SIZE_BYTES = _knob(
    "AUTH_JWKS_MAX_SIZE_BYTES", 1 << 20, "Largest JWKS or OIDC discovery document accepted."
)

# --- scheduler and crons ----------------------------------------------------------------
SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT = _knob(
    "SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT",
    1000,
    "Most functions one mutation may schedule (runAfter/runAt calls).",
)
SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES = _knob(
    "SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES",
    16 << 20,
    "Most bytes of arguments of all the functions one mutation schedules (16 MiB).",
)
SCHEDULER_MAX_JOB_ARGS_BYTES = _knob(
    "SCHEDULER_MAX_JOB_ARGS_BYTES", 4 << 20, "Largest argument object of one scheduled function (4 MiB)."
)
SCHEDULER_INLINE_ARGS_MAX_BYTES = _knob(
    "SCHEDULER_INLINE_ARGS_MAX_BYTES",
    256 << 10,
    "Scheduled-function arguments up to this size are stored in the job document; larger ones "
    "in chunks beside it.",
)
SCHEDULER_EXECUTION_PARALLELISM_COUNT = _knob(
    "SCHEDULER_EXECUTION_PARALLELISM_COUNT",
    8,
    "Scheduled functions and cron runs executed at once.",
)
SCHEDULED_JOB_RETENTION_MS = _knob(
    "SCHEDULED_JOB_RETENTION_MS",
    7 * 24 * 3600_000,
    "How long finished scheduled functions and cron run logs are kept before being deleted.",
)
SCHEDULER_PRUNE_INTERVAL_MS = _knob(
    "SCHEDULER_PRUNE_INTERVAL_MS",
    60_000,
    "How often the scheduler deletes finished jobs and cron logs past their retention; also the "
    "longest it sleeps without re-reading its queues.",
)
SCHEDULER_LEASE_MS = _knob(
    "SCHEDULER_LEASE_MS",
    10_000,
    "Period of the lease (a document of `_leases`) that picks the one process or node running "
    "scheduled functions and crons. The holder renews it every third of a period and stops "
    "starting jobs two thirds of a period after its last renewal; another process takes it "
    "over once it has expired. Clocks of the nodes must agree to well within a third of it.",
)
SCHEDULER_PRUNE_BATCH_COUNT = _knob(
    "SCHEDULER_PRUNE_BATCH_COUNT", 500, "Documents deleted per retention transaction."
)
CRON_LOG_MAX_LOG_BYTES = _knob(
    "CRON_LOG_MAX_LOG_BYTES", 16 << 10, "Characters of log lines kept in one cron run log."
)

# --- admin: data, import/export, env, logs, deploy (application/admin.py) -----------------
ADMIN_PAGE_MAX_DOCUMENTS_COUNT = _knob(
    "ADMIN_PAGE_MAX_DOCUMENTS_COUNT", 1000, "Most documents one `convection data` page returns."
)
DASHBOARD_COUNT_MAX_DOCUMENTS_COUNT = _knob(
    "DASHBOARD_COUNT_MAX_DOCUMENTS_COUNT",
    1000,
    "Live document counts (the dashboard's table list) count at most this many per table and show more as `N+`.",
)
IMPORT_CHUNK_DOCUMENTS_COUNT = _knob(
    "IMPORT_CHUNK_DOCUMENTS_COUNT",
    4000,
    "Documents written (or deleted, for --replace) per import transaction.",
)
IMPORT_CHUNK_MAX_BYTES = _knob(
    "IMPORT_CHUNK_MAX_BYTES",
    4 << 20,
    "A streaming import commits its current chunk once its documents reach this size (4 MiB).",
)
IMPORT_PART_MAX_BYTES = _knob(
    "IMPORT_PART_MAX_BYTES",
    1 << 20,
    "Bytes of the file per part the CLI reads (and sends to a running backend) in a streaming import (1 MiB).",
)
IMPORT_SESSION_IDLE_MS = _knob(
    "IMPORT_SESSION_IDLE_MS",
    120_000,
    "A streaming import to a running backend that receives no part for this long is undone.",
)
ADMIN_UPLOAD_MAX_BYTES = _knob(
    "ADMIN_UPLOAD_MAX_BYTES",
    256 << 20,
    "Largest import file or deploy bundle accepted over HTTP, and largest unpacked bundle (256 MiB).",
)
ENV_VAR_NAME_MAX_LENGTH_COUNT = _knob(
    "ENV_VAR_NAME_MAX_LENGTH_COUNT", 40, "Longest deployment environment variable name."
)
ENV_VAR_VALUE_MAX_BYTES = _knob(
    "ENV_VAR_VALUE_MAX_BYTES", 8 << 10, "Largest deployment environment variable value (8 KiB)."
)
ADMIN_LOG_BUFFER_ENTRIES_COUNT = _knob(
    "ADMIN_LOG_BUFFER_ENTRIES_COUNT",
    1000,
    "Function calls kept in memory in the call log (dashboard Logs page, `convection logs`); older ones are dropped.",
)
ADMIN_LOGS_POLL_TIMEOUT_MS = _knob(
    "ADMIN_LOGS_POLL_TIMEOUT_MS", 25_000, "Longest a `GET /api/admin/logs` long-poll waits for new lines."
)
DEPLOY_KEEP_VERSIONS_COUNT = _knob(
    "DEPLOY_KEEP_VERSIONS_COUNT", 5, "Deployed code folders kept in `<data>/deployed/` (the active one included)."
)
CLI_SERVER_PROBE_TIMEOUT_MS = _knob(
    "CLI_SERVER_PROBE_TIMEOUT_MS",
    5_000,
    "How long a CLI command waits for the server that holds its data directory to answer `/version`.",
)

# --- file storage (convection/files) -----------------------------------------------------
STORAGE_UPLOAD_URL_VALIDITY_MS = _knob(
    "STORAGE_UPLOAD_URL_VALIDITY_MS",
    3_600_000,
    "How long an upload URL from ctx.storage.generate_upload_url() accepts uploads (1 hour, as in Convex).",
)
STORAGE_UPLOAD_MAX_BYTES = _knob(
    "STORAGE_UPLOAD_MAX_BYTES",
    0,
    "Largest file accepted by POST /api/storage/upload (413 beyond); 0: no limit, as in Convex.",
)
STORAGE_ORPHAN_GRACE_MS = _knob(
    "STORAGE_ORPHAN_GRACE_MS",
    3_600_000,
    "Age a blob without a _storage row (or an abandoned staged upload) must reach before the sweeper deletes it.",
)
STORAGE_RETRY_INTERVAL_MS = _knob(
    "STORAGE_RETRY_INTERVAL_MS",
    1000,
    "While the store fails writes, how often the idle writer probes it (and retries reading "
    "the commit log to resolve a write whose outcome is unknown).",
)
STORAGE_SWEEP_INTERVAL_MS = _knob(
    "STORAGE_SWEEP_INTERVAL_MS",
    21_600_000,
    "How often the server looks for orphaned blobs (also once at start); 0: only at start.",
)
S3_PART_SIZE_BYTES = _knob(
    "S3_PART_SIZE_BYTES",
    8 << 20,
    "S3 blob store: size of each multipart-upload part, and the largest blob sent in one PutObject "
    "(8 MiB; S3 requires at least 5 MiB, and allows 10,000 parts per object).",
)
S3_CONNECT_TIMEOUT_MS = _knob("S3_CONNECT_TIMEOUT_MS", 10_000, "S3 blob store: connect timeout of one request.")
S3_READ_TIMEOUT_MS = _knob("S3_READ_TIMEOUT_MS", 60_000, "S3 blob store: read timeout of one request.")
S3_MAX_ATTEMPTS_COUNT = _knob(
    "S3_MAX_ATTEMPTS_COUNT", 3, "S3 blob store: attempts per request (boto3's standard retry mode)."
)
S3_MAX_CONNECTIONS_COUNT = _knob(
    "S3_MAX_CONNECTIONS_COUNT", 32, "S3 blob store: size of the connection pool (concurrent S3 requests)."
)
