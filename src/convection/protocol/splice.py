"""Transitions built as bytes around shared, pre-encoded query results (fan-out).

A query result that fans out to N sockets is encoded once: :func:`result_body` gives the
part of its ``QueryUpdated``/``QueryFailed`` modification that is the same for every socket
(``"value":…,"logLines":[…]`` or ``"errorMessage":…,"logLines":[…][,"errorData":…]``); the
shared query cache keeps it with the result. Each socket then splices its own small parts
around those bytes: the ``queryId`` and ``journal`` of the modification
(:func:`query_modification`) and the versions, clock skew and server ts of the Transition
(:func:`transition`). The text is the same JSON that ``orjson.dumps`` of the message dicts of
:mod:`convection.protocol.messages` gives, field for field (tests compare the two).

Invariant: every function here returns one complete JSON value (an object), so the results
can be spliced into one another without re-parsing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol

import orjson

from convection.protocol.messages import StateVersion
from convection.protocol.timestamps import encode_ts


class Outcome(Protocol):
    """The fields of a function outcome this module reads (``functions.outcome`` has them)."""

    @property
    def success(self) -> bool: ...
    @property
    def value_json(self) -> bytes: ...
    @property
    def log_lines(self) -> list[str]: ...
    @property
    def error_message(self) -> str: ...
    @property
    def has_error_data(self) -> bool: ...
    @property
    def error_data_json(self) -> bytes: ...


_UPDATED = b'{"type":"QueryUpdated","queryId":'
_FAILED = b'{"type":"QueryFailed","queryId":'


def result_body(outcome: Outcome) -> bytes:
    """The socket-independent middle of a query's modification (see the module docstring)."""
    logs = orjson.dumps(outcome.log_lines)
    if outcome.success:
        return b'"value":' + outcome.value_json + b',"logLines":' + logs
    body = b'"errorMessage":' + orjson.dumps(outcome.error_message) + b',"logLines":' + logs
    return body


def error_data_suffix(outcome: Outcome) -> bytes:
    """``,"errorData":…`` of a failed outcome carrying ConvexError data, else nothing
    (it follows ``journal``, as in :func:`convection.protocol.messages.query_failed`)."""
    if outcome.success or not outcome.has_error_data:
        return b""
    return b',"errorData":' + outcome.error_data_json


def query_modification(
    query_id: int, success: bool, body: bytes, journal: str | None, suffix: bytes = b""
) -> bytes:
    """One ``QueryUpdated`` (``success``) or ``QueryFailed`` modification around ``body``."""
    head = _UPDATED if success else _FAILED
    return b"".join(
        (head, str(query_id).encode(), b",", body, b',"journal":', orjson.dumps(journal), suffix, b"}")
    )


def query_removed(query_id: int) -> bytes:
    """The ``QueryRemoved`` modification of ``query_id``."""
    return b'{"type":"QueryRemoved","queryId":%d}' % query_id


@functools.lru_cache(maxsize=1024)
def _version(query_set: int, identity: int, ts: int) -> bytes:
    # Cached: after a commit every socket's Transition ends at the same few versions. Keyed
    # by the ints (hashed in C), not the StateVersion (its __hash__ is Python code).
    return b'{"querySet":%d,"identity":%d,"ts":"%s"}' % (
        query_set,
        identity,
        encode_ts(ts).encode("ascii"),
    )


def transition(
    start: StateVersion,
    end: StateVersion,
    modifications: Sequence[bytes],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> bytes:
    """The Transition message (as :func:`convection.protocol.messages.transition`) with
    already encoded ``modifications``."""
    parts = [
        b'{"type":"Transition","startVersion":',
        _version(start.query_set, start.identity, start.ts),
        b',"endVersion":',
        _version(end.query_set, end.identity, end.ts),
        b',"modifications":[',
        b",".join(modifications),
        b'],"clientClockSkew":',
        b"null" if client_clock_skew is None else str(int(client_clock_skew)).encode(),
    ]
    if server_ts is not None:
        parts.append(b',"serverTs":%d' % server_ts)
    parts.append(b"}")
    return b"".join(parts)
