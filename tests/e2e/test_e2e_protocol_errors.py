"""Every protocol error path of PROTOCOL.md §4.9 over a raw WebSocket (the `websockets`
package), against the real server: deterministic client mistakes end in FatalError + close,
function-level problems are function errors (QueryFailed / success:false) on a socket that
stays open, and after each a separate healthy client still works. Also: mutation
de-duplication on (sessionId, requestId) across sockets."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import ServerProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ZERO_VERSION = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


def decode_ts(ts: str) -> int:
    return int(struct.unpack("<Q", base64.b64decode(ts))[0])


def encode_ts(ts: int) -> str:
    return base64.b64encode(struct.pack("<Q", ts)).decode()


def http_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@dataclass
class Closed:
    code: int | None
    reason: str
    before: list[dict[str, Any]] = field(default_factory=list)


class RawClient:
    """A hand-driven sync socket, speaking the protocol like the npm client does."""

    def __init__(self, base_url: str, *, session_id: str | None = None) -> None:
        ws_url = base_url.replace("http://", "ws://") + "/api/1.48.0/sync"
        # (entered as a context manager: websockets >= 17.1 warns on a bare connect())
        self._connection = connect(ws_url, max_size=None, open_timeout=10, close_timeout=5)
        self.ws: ClientConnection = self._connection.__enter__()
        self.session_id = session_id or str(uuid.uuid4())
        self.query_set = 0

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.__exit__(None, None, None)

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def hello(self) -> None:
        self.send({
            "type": "Connect",
            "sessionId": self.session_id,
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        })

    def modify(self, *modifications: dict[str, Any], base: int | None = None) -> None:
        base_version = self.query_set if base is None else base
        self.send({
            "type": "ModifyQuerySet",
            "baseVersion": base_version,
            "newVersion": base_version + 1,
            "modifications": list(modifications),
        })
        self.query_set = base_version + 1

    def recv(self, timeout: float = 15) -> dict[str, Any]:
        """The next message other than Ping."""
        while True:
            text = self.ws.recv(timeout=timeout)
            message = json.loads(text)
            if message.get("type") != "Ping":
                return dict(message)

    def recv_type(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        while True:
            message = self.recv(timeout)
            if message["type"] == kind:
                return message

    def recv_transition(self, *, query_set: int, timeout: float = 15) -> dict[str, Any]:
        """The first Transition whose endVersion has reached ``query_set``."""
        while True:
            message = self.recv_type("Transition", timeout)
            if message["endVersion"]["querySet"] >= query_set:
                return message

    def expect_closed(self, timeout: float = 15) -> Closed:
        """Read until the server closes; returns the close frame and what came before."""
        before: list[dict[str, Any]] = []
        try:
            while True:
                before.append(self.recv(timeout))
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return Closed(
                code=None if rcvd is None else rcvd.code,
                reason="" if rcvd is None else rcvd.reason,
                before=before,
            )


def add(query_id: int, path: str, args: dict[str, Any] | None = None, journal: str | None = None) -> dict[str, Any]:
    return {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args or {}], "journal": journal}


def mutation(request_id: int, path: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args or {}]}


def assert_healthy(url: str) -> None:
    """A separate, new client gets a Transition with a query result and a mutation answer."""
    with RawClient(url) as client:
        client.hello()
        client.modify(add(0, "messages:default"))
        transition = client.recv_type("Transition")
        assert transition["startVersion"] == ZERO_VERSION
        assert transition["endVersion"]["querySet"] == 1
        [update] = transition["modifications"]
        assert update == {
            "type": "QueryUpdated",
            "queryId": 0,
            "value": "the default export",
            "logLines": [],
            "journal": None,
        }
        client.send(mutation(0, "messages:echo_mutation", {"ok": True}))
        response = client.recv_type("MutationResponse")
        assert response["success"] is True
        assert response["result"] == {"ok": True}
        after = client.recv_type("Transition")
        assert decode_ts(after["endVersion"]["ts"]) >= decode_ts(response["ts"])


def test_healthy_session_chains_versions(server_url: str) -> None:
    assert_healthy(server_url)


def test_wrong_base_version_is_fatal(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.modify(add(0, "messages:default"), base=5)
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["FatalError"]
        assert "Base version 5" in closed.before[0]["error"]
        assert closed.code in (None, 1000, 1005)
    assert_healthy(server_url)


def test_repeated_base_version_is_fatal(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.modify(add(0, "messages:default"))
        assert client.recv_type("Transition")["endVersion"]["querySet"] == 1
        client.modify(add(1, "messages:default"), base=0)  # should have been 1
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["FatalError"]
        assert "BaseVersion" in closed.reason or "Base version" in closed.before[0]["error"]
    assert_healthy(server_url)


def test_unknown_function_is_a_query_failure_not_a_transport_error(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.modify(add(0, "nope:nothing"), add(1, "messages:secret"), add(2, "messages.js:default"))
        transition = client.recv_type("Transition")
        mods = {m["queryId"]: m for m in transition["modifications"]}
        assert mods[0]["type"] == "QueryFailed"
        assert mods[0]["errorMessage"] == "Could not find public function for 'nope:nothing'."
        assert "errorData" not in mods[0]
        # An internal function does not exist for a non-admin caller.
        assert mods[1]["type"] == "QueryFailed"
        assert mods[1]["errorMessage"] == "Could not find public function for 'messages:secret'."
        # The Rust client's canonical form "module.js:fn" resolves like "module:fn".
        assert mods[2]["type"] == "QueryUpdated"
        assert mods[2]["value"] == "the default export"
        # The socket is still usable: a removal is acknowledged.
        client.modify({"type": "Remove", "queryId": 0})
        again = client.recv_type("Transition")
        assert again["startVersion"] == transition["endVersion"]
        assert {"type": "QueryRemoved", "queryId": 0} in again["modifications"]
    assert_healthy(server_url)


def test_wrong_kind_is_a_function_error(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.modify(add(0, "messages:send", {"body": "x"}))
        transition = client.recv_type("Transition")
        [failed] = transition["modifications"]
        assert failed["type"] == "QueryFailed"
        assert failed["errorMessage"] == (
            "Trying to execute messages:send as Query, but it is defined as Mutation."
        )
        client.send(mutation(0, "messages:list"))
        response = client.recv_type("MutationResponse")
        assert response["success"] is False
        assert response["result"] == (
            "Trying to execute messages:list as Mutation, but it is defined as Query."
        )
        assert response["ts"] is None
        # A failed mutation is still followed by a Transition (the Python client needs it).
        client.recv_type("Transition")
        client.send({"type": "Action", "requestId": 1, "udfPath": "messages:list", "args": [{}]})
        action = client.recv_type("ActionResponse")
        assert action["success"] is False
        assert action["result"] == "Trying to execute messages:list as Action, but it is defined as Query."
        # ... and the socket still serves requests.
        client.send(mutation(2, "messages:echo_mutation", {"n": 1}))
        assert client.recv_type("MutationResponse")["success"] is True
    assert_healthy(server_url)


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1, 2, 3]",
        '{"type": "NoSuchMessage"}',
        '{"type": "ModifyQuerySet", "baseVersion": "zero"}',
    ],
    ids=["malformed-json", "not-an-object", "unknown-type", "bad-field"],
)
def test_malformed_message_is_fatal(server_url: str, frame: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.send(frame)
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["FatalError"]
        assert closed.code in (None, 1000, 1005)
    assert_healthy(server_url)


def test_message_before_connect_is_fatal(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.modify(add(0, "messages:default"))
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["FatalError"]
        assert "Connect" in closed.before[0]["error"]
    assert_healthy(server_url)


def test_binary_frame_is_fatal(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.send(b"\x00\x01binary")
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["FatalError"]
        assert "binary WebSocket frame" in closed.before[0]["error"]
        assert (closed.code, closed.reason) == (1000, "WSMessageNotText")
    assert_healthy(server_url)


@pytest.mark.parametrize(
    ("frames", "reason", "fragment"),
    [
        (
            [{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 0, "modifications": []}],
            "BaseVersionMismatch",
            "newVersion 0 must be above its baseVersion 0",
        ),
        (
            [{"type": "Authenticate", "baseVersion": 3, "tokenType": "None"}],
            "BaseVersionMismatch",
            "Authenticate baseVersion 3",
        ),
        (
            [
                {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                 "modifications": [add(5, "messages:default")]},
                {"type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2,
                 "modifications": [add(5, "messages:list")]},
            ],
            "DuplicateQueryId",
            "queryId 5",
        ),
        (
            [{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
              "modifications": [add(1, "messages:default"), add(1, "messages:list")]}],
            "DuplicateQueryId",
            "queryId 1",
        ),
        (
            [{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
              "modifications": [add(i, "messages:echo", {"i": i}) for i in range(10_000)]}],
            "TooManyQueries",
            "SYNC_MAX_QUERIES_PER_MODIFY_COUNT",
        ),
    ],
    ids=["query-set-version-not-growing", "authenticate-version", "duplicate-query-id",
         "duplicate-query-id-in-one-message", "10000-queries-in-one-message"],
)
def test_bad_versions_and_query_sets_are_fatal(
    server_url: str, frames: list[dict[str, Any]], reason: str, fragment: str
) -> None:
    """A client mistake gets a FatalError naming it (PROTOCOL.md §4.9), not 1011."""
    with RawClient(server_url) as client:
        client.hello()
        for frame in frames:
            client.send(frame)
        closed = client.expect_closed()
        fatal = [m for m in closed.before if m["type"] == "FatalError"]
        assert len(fatal) == 1 and fragment in fatal[0]["error"], closed.before
        assert (closed.code, closed.reason) == (1000, reason)
    assert_healthy(server_url)


def test_max_observed_timestamp_far_in_the_future_is_refused(server_url: str) -> None:
    """PROTOCOL.md §4.3: a ts no commit of ours can have had (a day past the wall clock)
    closes 1011 InternalServerError, as the reference server does."""
    far = (int(time.time()) + 86_400) * 10**9
    with RawClient(server_url) as client:
        client.send({"type": "Connect", "sessionId": client.session_id, "connectionCount": 1,
                     "lastCloseReason": "InitialConnect", "maxObservedTimestamp": encode_ts(far),
                     "clientTs": 0})
        with contextlib.suppress(ConnectionClosed):  # the server may close before this arrives
            client.modify(add(0, "messages:default"))
        closed = client.expect_closed()
        assert (closed.code, closed.reason) == (1011, "InternalServerError")
        assert all(m["type"] != "Transition" for m in closed.before)
    assert_healthy(server_url)


def test_max_observed_timestamp_slightly_ahead_is_served_at_or_above_it(server: ServerProcess) -> None:
    """A ts a little ahead of the latest commit (a data reset, a clock moved back) moves the
    commit clock past it: the client never sees a ts below one it observed."""
    latest = decode_ts(http_json(server.url + "/api/query_ts", {})["ts"])
    ahead = latest + 2 * 10**9
    with RawClient(server.url) as client:
        client.send({"type": "Connect", "sessionId": client.session_id, "connectionCount": 1,
                     "lastCloseReason": "InitialConnect", "maxObservedTimestamp": encode_ts(ahead),
                     "clientTs": 0})
        client.modify(add(0, "messages:default"))
        transition = client.recv_transition(query_set=1)
        assert decode_ts(transition["endVersion"]["ts"]) >= ahead
        client.send(mutation(0, "messages:echo_mutation", {"n": 1}))
        response = client.recv_type("MutationResponse")
        assert decode_ts(response["ts"]) > ahead


def test_cached_result_never_answers_for_a_future_ts(server_url: str) -> None:
    body = {"path": "messages:default", "args": {}, "format": "json"}
    assert http_json(server_url + "/api/query", body)["status"] == "success"  # now cached
    latest = decode_ts(http_json(server_url + "/api/query_ts", {})["ts"])
    future = http_json(server_url + "/api/query_at_ts", {**body, "ts": encode_ts(latest + 3_600 * 10**9)})
    assert future["status"] == "error", future
    assert "in the future" in future["errorMessage"]
    now = http_json(server_url + "/api/query_at_ts", {**body, "ts": encode_ts(latest)})
    assert now == {"status": "success", "value": "the default export"}


def test_huge_message_closes_the_socket(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        # Over every inbound limit (the WebSocket layer's and SYNC_MAX_MESSAGE_SIZE_BYTES).
        blob = "x" * (65 << 20)
        huge = '{"type":"Mutation","requestId":0,"udfPath":"messages:blob_len","args":[{"blob":"' + blob + '"}]}'
        with pytest.raises(ConnectionClosed):  # the server may close while we still send
            client.send(huge)
            client.recv(timeout=30)
        # 1009 (message too big) when the close frame reaches us; 1006 when the server closed
        # while we were still writing the 65 MiB and the close frame was lost with the socket.
        assert client.ws.close_code in (1009, 1006)
    assert_healthy(server_url)


def test_large_but_allowed_messages_work(server_url: str) -> None:
    blob = "y" * (4 << 20)
    with RawClient(server_url) as client:
        client.hello()
        client.send(mutation(0, "messages:blob_len", {"blob": blob}))
        response = client.recv_type("MutationResponse", timeout=30)
        assert response["success"] is True
        assert response["result"] == len(blob)
        # A 4 MiB query argument and a 4 MiB result.
        client.modify(add(0, "messages:echo", {"blob": blob}))
        transition = client.recv_transition(query_set=1, timeout=30)
        assert transition["modifications"][0]["value"] == {"blob": blob}


def test_mutation_with_a_large_result_over_the_socket(server_url: str) -> None:
    blob = "z" * (2 << 20)
    with RawClient(server_url) as client:
        client.hello()
        client.send(mutation(0, "messages:echo_mutation", {"blob": blob}))
        response = client.recv_type("MutationResponse", timeout=30)
        assert response["success"] is True, response["result"][:300]
        assert response["result"] == {"blob": blob}


def test_bad_admin_key_is_an_auth_error(server_url: str) -> None:
    with RawClient(server_url) as client:
        client.hello()
        client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "nope"})
        closed = client.expect_closed()
        assert [m["type"] for m in closed.before] == ["AuthError"]
        assert closed.before[0]["authUpdateAttempted"] is True
        assert closed.before[0]["baseVersion"] == 0
    assert_healthy(server_url)


def test_mutation_flood_is_overload_not_fatal(server_url: str) -> None:
    """More queued mutations than SYNC_MAX_QUEUED_MUTATIONS_COUNT (1000) on one socket: close
    1013 with a reason the JS client backs off on (it reconnects; no FatalError)."""
    with RawClient(server_url) as client:
        client.hello()
        frames = [json.dumps(mutation(i, "messages:echo_mutation", {"i": i})) for i in range(3000)]
        with contextlib.suppress(ConnectionClosed):
            for frame in frames:
                client.send(frame)
        closed = client.expect_closed(timeout=30)
        assert "FatalError" not in [m["type"] for m in closed.before]
        assert (closed.code, closed.reason) == (1013, "TooManyConcurrentMutations")
    assert_healthy(server_url)


def test_admin_key_may_call_internal_functions(server: ServerProcess) -> None:
    with RawClient(server.url) as client:
        client.hello()
        client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": server.admin_key})
        client.modify()
        transition = client.recv_transition(query_set=1)
        assert transition["endVersion"]["identity"] == 1
        client.send(mutation(0, "messages:secret"))
        response = client.recv_type("MutationResponse")
        assert response["success"] is True
        assert response["result"] == "internal"


def test_mutation_is_deduplicated_across_sockets(server_url: str) -> None:
    """The JS client re-sends an unconfirmed mutation on a new socket with the same sessionId
    and requestId: the server answers with the stored result and the original commit ts, and
    does not run it again."""
    session = str(uuid.uuid4())
    name = f"dedup-{session}"
    with RawClient(server_url, session_id=session) as first:
        first.hello()
        first.send(mutation(7, "counter:increment", {"name": name}))
        original = first.recv_type("MutationResponse")
        assert original["success"] is True
        assert original["result"] == 1
    with RawClient(server_url, session_id=session) as second:
        second.hello()
        second.send(mutation(7, "counter:increment", {"name": name}))
        resent = second.recv_type("MutationResponse")
        assert resent["success"] is True
        assert resent["result"] == 1
        assert resent["ts"] == original["ts"]
        # A new requestId is a new mutation.
        second.send(mutation(8, "counter:increment", {"name": name}))
        assert second.recv_type("MutationResponse")["result"] == 2
    # Another session's requestId 7 is unrelated.
    with RawClient(server_url) as other:
        other.hello()
        other.send(mutation(7, "counter:increment", {"name": name}))
        assert other.recv_type("MutationResponse")["result"] == 3
        other.modify(add(0, "counter:get", {"name": name}))
        transition = other.recv_transition(query_set=1)
        assert transition["modifications"][0]["value"] == 3
