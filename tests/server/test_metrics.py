"""``GET /metrics``: the Prometheus text format, and counters that move with real calls.

The scrapes go through the Starlette TestClient against ``build_app(open_deployment(...))``;
the exposition text is parsed by the tiny parser below (samples, HELP/TYPE, histograms).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.application.metrics import CONTENT_TYPE, MetricFamily, render
from convection.errors import OccConflict
from convection.functions.loader import load_app
from convection.server.app import Deployment, build_app
from convection.stats import Histogram

NOTES = '''
from convection import action, mutation, query, v

@mutation(args={"text": v.string()})
def add(ctx, text):
    return ctx.db.insert("notes", {"text": text})

@mutation
def bump(ctx, id):
    doc = ctx.db.get(id)
    ctx.db.patch(id, {"text": doc["text"] + "!"})

@mutation
def fail(ctx):
    raise RuntimeError("boom")

@query
def count(ctx):
    return len(ctx.db.query("notes").collect())

@action
async def shout(ctx, text):
    return text.upper()
'''

HTTP = '''
from starlette.responses import PlainTextResponse
from convection import HttpRouter

http = HttpRouter()

@http.route(path="/ping", method="GET")
async def ping(ctx, request):
    return PlainTextResponse("pong")
'''

FAMILIES = {
    "convection_info": "gauge",
    "convection_function_calls_total": "counter",
    "convection_function_duration_seconds": "histogram",
    "convection_mutation_occ_retries_total": "counter",
    "convection_query_cache_hits_total": "counter",
    "convection_query_cache_misses_total": "counter",
    "convection_query_cache_entries": "gauge",
    "convection_database_commits_total": "counter",
    "convection_database_occ_conflicts_total": "counter",
    "convection_database_commit_duration_seconds": "histogram",
    "convection_database_commit_batch_size": "histogram",
    "convection_database_subscriptions": "gauge",
    "convection_database_latest_ts_seconds": "gauge",
    "convection_database_max_ts_lag_seconds": "gauge",
    "convection_sync_connections": "gauge",
    "convection_sync_connections_total": "counter",
    "convection_sync_query_subscriptions": "gauge",
    "convection_sync_transitions_sent_total": "counter",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
}


# --- a tiny parser of the text exposition format --------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


@dataclass
class Scrape:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def family_of(self, sample: str) -> str:
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample.removesuffix(suffix)
            if base != sample and self.types.get(base) == "histogram":
                return base
        return sample


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse(text: str) -> Scrape:
    out = Scrape()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in out.types, f"TYPE twice for {name}"
            out.types[name] = kind
            continue
        if line.startswith("# HELP "):
            _, _, name, text_ = line.split(" ", 3)
            out.helps[name] = text_
            continue
        assert not line.startswith("#") and line, f"unexpected line {line!r}"
        m = _SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        name, _, raw_labels, raw_value = m.groups()
        labels: list[tuple[str, str]] = []
        if raw_labels:
            pos = 0
            while pos < len(raw_labels):
                lm = _LABEL.match(raw_labels, pos)
                assert lm is not None, f"bad labels in {line!r}"
                labels.append((lm.group(1), _unescape(lm.group(2))))
                pos = lm.end()
        value = float(raw_value.replace("+Inf", "inf").replace("-Inf", "-inf"))
        key = (name, frozenset(labels))
        assert key not in out.samples, f"duplicate sample {line!r}"
        out.samples[key] = value
        family = out.family_of(name)
        assert family in out.types, f"sample {name} before its # TYPE"
    return out


def check_histograms(scrape: Scrape) -> None:
    """Buckets are cumulative, end at +Inf, and +Inf equals _count."""
    for family, kind in scrape.types.items():
        if kind != "histogram":
            continue
        series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
        for (name, labels), value in scrape.samples.items():
            if name == family + "_bucket":
                le = dict(labels)["le"]
                rest = frozenset(kv for kv in labels if kv[0] != "le")
                series.setdefault(rest, []).append((float(le.replace("+Inf", "inf")), value))
        assert series, f"histogram {family} has no buckets"
        for labels, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{family}{dict(labels)} buckets are not cumulative"
            assert math.isinf(buckets[-1][0])
            assert scrape.samples[(family + "_count", labels)] == counts[-1]
            assert (family + "_sum", labels) in scrape.samples


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(notes=NOTES, http=HTTP)


@pytest.fixture
def client(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("CONVECTION_METRICS_TOKEN", raising=False)
    with TestClient(build_app(deployment)) as c:
        yield c


def scrape(client: TestClient, **headers: str) -> Scrape:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return parse(r.text)


def call(client: TestClient, kind: str, path: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    r = client.post(f"/api/{kind}", json={"path": path, "args": args or {}, "format": "json"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- tests ----------------------------------------------------------------------------------------


def test_the_scrape_is_valid_exposition_text_with_the_operator_metrics(client: TestClient) -> None:
    call(client, "mutation", "notes:add", {"text": "a"})
    s = scrape(client)
    for name, kind in FAMILIES.items():
        assert s.types.get(name) == kind, f"{name}: {s.types.get(name)}"
        assert s.helps.get(name), f"{name} has no HELP"
    check_histograms(s)
    for kind in ("query", "mutation", "action", "httpAction"):
        for outcome in ("success", "error"):
            assert (
                "convection_function_calls_total",
                frozenset({("kind", kind), ("outcome", outcome)}),
            ) in s.samples
    assert s.value("convection_info", version="0.1.0") == 1
    assert s.value("process_resident_memory_bytes") > 0
    assert s.value("process_cpu_seconds_total") > 0
    assert s.value("convection_database_max_ts_lag_seconds") >= 0


def test_function_cache_and_commit_counters_move_with_calls(client: TestClient) -> None:
    before = scrape(client)

    def delta(after: Scrape, name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert call(client, "mutation", "notes:add", {"text": "a"})["status"] == "success"
    assert call(client, "mutation", "notes:add", {"text": "b"})["status"] == "success"
    assert call(client, "mutation", "notes:fail")["status"] == "error"
    assert call(client, "mutation", "notes:add", {"text": 3})["status"] == "error"  # bad args
    assert call(client, "query", "notes:count")["value"] == 2
    assert call(client, "query", "notes:count")["value"] == 2  # from the cache
    assert call(client, "action", "notes:shout", {"text": "hi"})["value"] == "HI"
    assert client.get("/http/ping").text == "pong"
    after = scrape(client)
    check_histograms(after)

    calls = "convection_function_calls_total"
    assert delta(after, calls, kind="mutation", outcome="success") == 2
    assert delta(after, calls, kind="mutation", outcome="error") == 2
    assert delta(after, calls, kind="query", outcome="success") == 1
    assert delta(after, calls, kind="action", outcome="success") == 1
    assert delta(after, calls, kind="httpAction", outcome="success") == 1
    assert delta(after, "convection_function_duration_seconds_count", kind="mutation", outcome="success") == 2
    assert delta(after, "convection_query_cache_misses_total") == 1
    assert delta(after, "convection_query_cache_hits_total") == 1
    assert delta(after, "convection_database_commits_total") == 2
    assert delta(after, "convection_database_commit_duration_seconds_count") == 2
    batches = delta(after, "convection_database_commit_batch_size_count")
    assert 1 <= batches <= 2
    assert delta(after, "convection_database_commit_batch_size_sum") == 2
    assert after.value("convection_database_latest_ts_seconds") > before.value("convection_database_latest_ts_seconds")


def test_occ_conflicts_and_mutation_retries_are_counted(client: TestClient, deployment: Deployment) -> None:
    note = call(client, "mutation", "notes:add", {"text": "a"})["value"]
    before = scrape(client)
    db = deployment.db

    # Two transactions read and write the same document: the second to commit conflicts.
    first, second = db.begin(), db.begin()
    for txn in (first, second):
        doc = txn.get(note)
        assert doc is not None
        txn.patch(note, {"text": doc["text"] + "?"})
    db.commit(first)
    with pytest.raises(OccConflict):
        db.commit(second)

    # A mutation whose read is overwritten after it began is retried (and then succeeds).
    conflicts = iter([True])

    def interfere(txn: Any) -> None:
        if next(conflicts, False):
            other = db.begin()
            other.patch(note, {"text": "changed"})
            db.commit(other)

    runner = deployment.app.runner
    outcome = runner.run_mutation("notes:bump", {"id": note}, None, check_first=interfere, sleep=lambda s: None)
    assert outcome.success
    after = scrape(client)
    assert after.value("convection_database_occ_conflicts_total") - before.value("convection_database_occ_conflicts_total") == 2
    assert after.value("convection_mutation_occ_retries_total") - before.value("convection_mutation_occ_retries_total") == 1


def test_websocket_connections_subscriptions_and_transitions(client: TestClient) -> None:
    before = scrape(client)
    assert before.value("convection_sync_connections") == 0
    with client.websocket_connect("/api/sync") as ws:
        ws.send_text(orjson.dumps({"type": "Connect", "sessionId": "s1", "connectionCount": 0, "clientTs": 0}).decode())
        ws.send_text(
            orjson.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [{"type": "Add", "queryId": 0, "udfPath": "notes:count", "args": [{}]}],
                }
            ).decode()
        )
        message = orjson.loads(ws.receive_text())
        assert message["type"] == "Transition"
        during = scrape(client)
        assert during.value("convection_sync_connections") == 1
        assert during.value("convection_sync_query_subscriptions") == 1
        assert during.value("convection_database_subscriptions") >= 1
        assert during.value("convection_query_cache_entries") >= 1
        sent = during.value("convection_sync_transitions_sent_total") - before.value("convection_sync_transitions_sent_total")
        assert sent == 1

        # A write the query read: the socket gets a second Transition.
        call(client, "mutation", "notes:add", {"text": "x"})
        message = orjson.loads(ws.receive_text())
        assert message["type"] == "Transition"
    after = scrape(client)
    assert after.value("convection_sync_connections") == 0
    assert after.value("convection_sync_query_subscriptions") == 0
    assert after.value("convection_sync_connections_total") - before.value("convection_sync_connections_total") == 1
    assert after.value("convection_sync_transitions_sent_total") - before.value("convection_sync_transitions_sent_total") == 2


def test_function_counts_survive_new_code(client: TestClient, deployment: Deployment) -> None:
    call(client, "mutation", "notes:add", {"text": "a"})
    before = scrape(client).value("convection_function_calls_total", kind="mutation", outcome="success")
    deployment.app.set_app(load_app(deployment.functions_dir))
    assert scrape(client).value("convection_function_calls_total", kind="mutation", outcome="success") == before


def test_a_metrics_token_protects_the_endpoint(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVECTION_METRICS_TOKEN", "s3cret")
    with TestClient(build_app(deployment)) as client:
        r = client.get("/metrics")
        assert r.status_code == 401
        assert r.json()["code"] == "Unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        admin = f"Convex {deployment.app.admin_key}"
        assert client.get("/metrics", headers={"Authorization": admin}).status_code == 401
        s = scrape(client, Authorization="Bearer s3cret")
        assert "convection_function_calls_total" in s.types


def test_render_escapes_labels_and_help_and_writes_special_numbers() -> None:
    hist = Histogram([0.5, 1.0])
    for v in (0.1, 0.5, 0.7, 3.0):
        hist.observe(v)
    fam = MetricFamily("x_seconds", "histogram", 'help with \\ and\nnewline').add_histogram(hist.snapshot(), path='a"b\\c\nd')
    gauge = MetricFamily("y", "gauge", "special").add(float("nan"), k="1").add(float("inf"), k="2").add(-0.25, k="3")
    text = render([fam, gauge])
    assert "# HELP x_seconds help with \\\\ and\\nnewline\n" in text
    assert 'x_seconds_bucket{path="a\\"b\\\\c\\nd",le="0.5"} 2\n' in text
    assert 'x_seconds_bucket{path="a\\"b\\\\c\\nd",le="+Inf"} 4\n' in text
    assert 'y{k="1"} NaN\ny{k="2"} +Inf\ny{k="3"} -0.25\n' in text
    s = parse(text)
    check_histograms(s)
    assert s.value("x_seconds_count", path='a"b\\c\nd') == 4
    assert s.value("x_seconds_bucket", path='a"b\\c\nd', le="1") == 3
    assert s.value("x_seconds_sum", path='a"b\\c\nd') == pytest.approx(4.3)
