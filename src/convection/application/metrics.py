"""Operational metrics in the Prometheus text exposition format (version 0.0.4), for
``GET /metrics`` (docs/metrics.md).

:class:`Metrics` is the registry of one deployment. It holds no counters of its own: the
layers count on their own objects (``Committer.commits``, ``Runner.stats``,
``QueryCache.hits``, the server's live sync connections, ...; recording costs an integer
increment or a histogram bucket) and :meth:`Metrics.collect` reads them at scrape time. So
nothing here is global and a scrape never slows the hot paths down.

The exposition format is written by hand (:func:`render`): it is a few lines of text per
metric, and doing it here avoids a dependency whose default registry is process-global state.

Invariants: counters (``*_total`` and histogram buckets) only grow for the life of the
process (the function-call stats survive a deploy); gauges are read as they are at the scrape.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from convection.stats import Histogram, HistogramSnapshot

if TYPE_CHECKING:
    from convection.application.app import Application

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]


@dataclass
class MetricFamily:
    """One metric: name, type, help text and its samples ``(name suffix, labels, value)``."""

    name: str
    type: MetricType
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> MetricFamily:
        self.samples.append(("", tuple(labels.items()), value))
        return self

    def add_histogram(self, snap: HistogramSnapshot, **labels: str) -> MetricFamily:
        base = tuple(labels.items())
        for bound, count in snap.buckets:
            self.samples.append(("_bucket", (*base, ("le", _number(bound))), count))
        self.samples.append(("_sum", base, snap.sum))
        self.samples.append(("_count", base, snap.count))
        return self


class SyncSource(Protocol):
    """What the server's registry of live WebSocket connections tells the metrics."""

    @property
    def connections_open(self) -> int: ...

    @property
    def connections_total(self) -> int: ...

    def transitions_sent(self) -> int: ...

    def query_subscriptions(self) -> int: ...

    def outbox_bytes(self) -> int: ...

    @property
    def outbox_overflows(self) -> int: ...


class Metrics:
    """The metrics of one deployment: reads ``app`` (and the server's ``sync`` connections,
    when given) at every :meth:`collect`. Call from the event loop thread (the sync source
    lives there); everything else it reads is thread-safe or a single attribute read."""

    def __init__(self, app: Application, *, sync: SyncSource | None = None, version: str = "") -> None:
        self.app = app
        self.sync = sync
        self.version = version
        self._created = time.time()

    def collect(self) -> list[MetricFamily]:
        return [*self._info(), *self._functions(), *self._cache(), *self._database(), *self._sync(), *_process(self._created)]

    def render(self) -> str:
        return render(self.collect())

    # --- families ------------------------------------------------------------------------------
    def _info(self) -> list[MetricFamily]:
        return [MetricFamily("convection_info", "gauge", "Always 1; the labels describe the server.").add(1, version=self.version)]

    def _functions(self) -> list[MetricFamily]:
        stats = self.app.runner.stats
        calls = MetricFamily(
            "convection_function_calls_total", "counter",
            "Function executions by kind (query, mutation, action, httpAction) and outcome (success, error). "
            "Queries answered from the query cache are not executions.",
        )
        duration = MetricFamily(
            "convection_function_duration_seconds", "histogram",
            "Execution time of functions by kind and outcome (a mutation's includes its commit and OCC retries).",
        )
        for (kind, outcome), hist in stats.calls.items():
            snap = hist.snapshot()
            calls.add(snap.count, kind=kind, outcome=outcome)
            duration.add_histogram(snap, kind=kind, outcome=outcome)
        retries = MetricFamily(
            "convection_mutation_occ_retries_total", "counter",
            "Mutation attempts retried after an optimistic concurrency conflict.",
        ).add(stats.occ_retries.value)
        return [calls, duration, retries]

    def _cache(self) -> list[MetricFamily]:
        cache = self.app.cache
        return [
            MetricFamily("convection_query_cache_hits_total", "counter", "Queries answered from the shared query cache.").add(cache.hits),
            MetricFamily("convection_query_cache_misses_total", "counter", "Queries the cache could not answer (executed).").add(cache.misses),
            MetricFamily("convection_query_cache_entries", "gauge", "Entries in the query cache.").add(len(cache)),
            MetricFamily(
                "convection_query_cache_bytes", "gauge",
                "Estimated bytes of the query cache's entries (budget: QUERY_CACHE_MAX_BYTES).",
            ).add(cache.bytes),
            MetricFamily(
                "convection_query_cache_evictions_total", "counter",
                "Entries dropped to keep the query cache within its byte budget.",
            ).add(cache.evictions),
            MetricFamily(
                "convection_query_result_encodes_total", "counter",
                "Query results encoded for the WebSocket (once per result, shared by every subscriber).",
            ).add(cache.encodes),
        ]

    def _database(self) -> list[MetricFamily]:
        db = self.app.db
        committer = db.committer
        latest = db.latest_ts()
        lag_s = max(0.0, (db.clock.now_ns() - latest) / 1e9)
        return [
            MetricFamily("convection_database_commits_total", "counter", "Commits published (transactions that wrote).").add(committer.commits),
            MetricFamily(
                "convection_database_occ_conflicts_total", "counter",
                "Commits refused because something they read changed meanwhile (OCC conflicts).",
            ).add(committer.occ_conflicts),
            _histogram(
                "convection_database_commit_duration_seconds",
                "Time from asking to commit to the commit being published (validation, queueing, "
                "the durable write, subscription invalidation).",
                committer.commit_seconds,
            ),
            _histogram(
                "convection_database_commit_batch_size",
                "Commits written per durable write (group commit).",
                committer.batch_sizes,
            ),
            MetricFamily(
                "convection_database_subscriptions", "gauge",
                "Live database-level read-set subscriptions (cached queries, scheduler).",
            ).add(len(db.subscriptions)),
            MetricFamily("convection_database_latest_ts_seconds", "gauge", "The latest published commit timestamp.").add(latest / 1e9),
            MetricFamily(
                "convection_database_max_ts_lag_seconds", "gauge",
                "Wall clock minus the latest published timestamp: how old the newest commit is "
                "(grows while nothing is written).",
            ).add(lag_s),
        ]

    def _sync(self) -> list[MetricFamily]:
        sync = self.sync
        if sync is None:
            return []
        return [
            MetricFamily("convection_sync_connections", "gauge", "Open WebSocket sync connections.").add(sync.connections_open),
            MetricFamily("convection_sync_connections_total", "counter", "WebSocket sync connections accepted.").add(sync.connections_total),
            MetricFamily(
                "convection_sync_query_subscriptions", "gauge", "Queries subscribed by the open sync connections (their query sets)."
            ).add(sync.query_subscriptions()),
            MetricFamily("convection_sync_transitions_sent_total", "counter", "Transition messages sent to sync clients.").add(sync.transitions_sent()),
            MetricFamily(
                "convection_sync_outbox_bytes", "gauge",
                "Bytes queued unsent on the open sync connections (per socket budget: SYNC_OUTBOX_MAX_BYTES).",
            ).add(sync.outbox_bytes()),
            MetricFamily(
                "convection_sync_outbox_overflows_total", "counter",
                "Sync connections closed (1013 OutboxFull) because the client stopped reading.",
            ).add(sync.outbox_overflows),
        ]


def _histogram(name: str, help_: str, hist: Histogram) -> MetricFamily:
    return MetricFamily(name, "histogram", help_).add_histogram(hist.snapshot())


# --- the process -------------------------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _process(fallback_start: float) -> list[MetricFamily]:
    """The standard ``process_*`` metrics (from /proc on Linux, best effort elsewhere)."""
    times = os.times()
    families = [
        MetricFamily("process_cpu_seconds_total", "counter", "User and system CPU time of the process.").add(times.user + times.system),
        MetricFamily("process_start_time_seconds", "gauge", "When the process started (Unix time).").add(_start_time() or fallback_start),
        MetricFamily("process_threads", "gauge", "Python threads of the process.").add(threading.active_count()),
    ]
    rss, vms = _memory()
    if rss is not None:
        families.append(MetricFamily("process_resident_memory_bytes", "gauge", "Resident memory of the process.").add(rss))
    if vms is not None:
        families.append(MetricFamily("process_virtual_memory_bytes", "gauge", "Virtual memory of the process.").add(vms))
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    else:
        families.append(MetricFamily("process_open_fds", "gauge", "Open file descriptors.").add(fds))
    return families


def _memory() -> tuple[int | None, int | None]:
    try:
        with open("/proc/self/statm") as f:
            size, resident = f.read().split()[:2]
        return int(resident) * _PAGE_SIZE, int(size) * _PAGE_SIZE
    except (OSError, ValueError):
        pass
    try:  # not Linux: the peak resident size is the best there is without a dependency
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak if sys.platform == "darwin" else peak * 1024), None
    except (ImportError, OSError):
        return None, None


def _start_time() -> float | None:
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        # Field 22 (starttime, clock ticks after boot); fields after the ")" of the command.
        ticks = float(stat.rsplit(")", 1)[1].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# --- the text format ---------------------------------------------------------------------------


def render(families: Iterable[MetricFamily]) -> str:
    """The text exposition format: ``# HELP``, ``# TYPE``, then one line per sample."""
    out: list[str] = []
    for fam in families:
        out.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        out.append(f"# TYPE {fam.name} {fam.type}")
        for suffix, labels, value in fam.samples:
            out.append(f"{fam.name}{suffix}{_labels(labels)} {_number(value)}")
    return "\n".join(out) + "\n"


def _labels(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
