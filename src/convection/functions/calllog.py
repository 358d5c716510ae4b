"""One record per function call, for the call log (the dashboard's Logs page, ``convection
logs``, the one-line-per-call output of ``convection dev``).

The runner builds a :class:`CallRecord` when a call ends (query, mutation, action, HTTP
action) and hands it to its ``on_call`` sink; nothing here keeps records (the bounded ring is
``application/logbuffer.py``). A call started by the scheduler or by a cron job is marked
with :func:`call_origin` around the runner call, so its record says ``origin`` "scheduled" or
"cron" rather than "client"; the mark applies to the call of that path only (not to the
functions an action calls in turn).

Invariants: a record is immutable and small: at most ``MAX_LOG_LINES_COUNT`` log lines (the
capture already bounds them) and an error message of at most ``MAX_LOG_LINE_LENGTH_COUNT``
characters; user frames are the ``at fn (file:line)`` lines of the error, engine frames are
never included.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from convection import knobs
from convection.errors import ConvectionError
from convection.functions.identity import Identity
from convection.functions.outcome import FunctionOutcome
from convection.functions.references import function_path

Origin = Literal["client", "scheduled", "cron"]

NOT_RUN = "NotRun"  # an outcome's error_code when the function did not run at all (not logged)

_RID_RE = re.compile(r"\[Request ID: ([0-9a-fA-F]+)\]")
_FRAME_RE = re.compile(r"^\s+at .+\(.+\)$")


class CallRecord(NamedTuple):
    """One finished function call. ``ts`` is when it started (ms since the epoch). A named
    tuple: immutable and cheap to build (one is built per call)."""

    ts: float
    path: str
    kind: str  # query | mutation | action | httpAction
    origin: Origin
    duration_ms: float
    success: bool
    error: str | None
    frames: tuple[str, ...]
    request_id: str
    identity: str
    lines: tuple[str, ...]


CallSink = Callable[[CallRecord], None]


@dataclass
class _Mark:
    origin: Origin
    path: str


_ORIGIN: contextvars.ContextVar[_Mark | None] = contextvars.ContextVar("convection_call_origin", default=None)


@contextlib.contextmanager
def call_origin(origin: Origin, path: str) -> Iterator[None]:
    """Mark the runner call of ``path`` made inside this block as started by ``origin``."""
    try:
        path = function_path(path)
    except ConvectionError:
        pass
    token = _ORIGIN.set(_Mark(origin, path))
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def _origin_of(path: str) -> Origin:
    mark = _ORIGIN.get()
    return mark.origin if mark is not None and mark.path == path else "client"


def identity_text(identity: Identity | None) -> str:
    """``system`` (scheduler, crons), ``anonymous``, ``admin``, ``admin as <subject>`` or
    ``user <subject>``."""
    if identity is None:
        return "system"
    attrs = identity.attributes or {}
    who = attrs.get("subject") or attrs.get("tokenIdentifier") or ""
    if identity.kind == "admin":
        return f"admin as {who}" if identity.attributes is not None else "admin"
    if identity.kind == "user":
        return f"user {who}".strip()
    return "anonymous"


def split_error(message: str) -> tuple[str, tuple[str, ...]]:
    """An outcome's error message as (message without frames, user frames)."""
    text = _RID_RE.sub("", message, count=1).replace("Server Error\n", "", 1).strip()
    lines = text.splitlines()
    frames = tuple(_relative(line.strip()) for line in lines if _FRAME_RE.match(line))
    rest = "\n".join(line for line in lines if not _FRAME_RE.match(line)).strip()
    limit = knobs.MAX_LOG_LINE_LENGTH_COUNT
    if len(rest) > limit:
        rest = rest[:limit] + " (truncated)"
    return rest or "Server Error", frames[: knobs.MAX_LOG_LINES_COUNT]


def _relative(frame: str) -> str:
    """A frame's file relative to the working directory (the project folder under
    ``convection dev``) when it lies below it: ``at fn (convex/notes.py:3)``."""
    cwd = os.getcwd().rstrip(os.sep) + os.sep
    return frame.replace("(" + cwd, "(", 1)


def new_request_id() -> str:
    return f"{random.getrandbits(64):016x}"


def record_call(
    sink: CallSink | None,
    kind: str,
    path: Any,
    identity: Identity | None,
    outcome: FunctionOutcome,
    started: float,
) -> None:
    """Build the record of a call that produced ``outcome`` (``started``: its
    ``time.perf_counter()`` at the start) and give it to ``sink``."""
    if sink is None or outcome.error_code == NOT_RUN:
        return
    duration = (time.perf_counter() - started) * 1000.0
    error: str | None = None
    frames: tuple[str, ...] = ()
    if outcome.success:
        rid = new_request_id()
    else:
        error, frames = split_error(outcome.error_message)
        found = _RID_RE.search(outcome.error_message)
        rid = found.group(1) if found else new_request_id()
    sink(_record(kind, path, identity, duration, outcome.success, error, frames, rid, outcome.log_lines))


def record_http_call(
    sink: CallSink | None,
    path: str,
    identity: Identity | None,
    started: float,
    lines: list[str],
    failure: BaseException | None,
) -> None:
    """The record of an HTTP action (``failure``: what it raised, if anything)."""
    if sink is None:
        return
    duration = (time.perf_counter() - started) * 1000.0
    error: str | None = None
    frames: tuple[str, ...] = ()
    if failure is not None:
        import traceback

        error = f"Uncaught {type(failure).__name__}: {failure}"[: knobs.MAX_LOG_LINE_LENGTH_COUNT]
        tb = traceback.extract_tb(failure.__traceback__)
        frames = tuple(
            _relative(f"at {f.name} ({f.filename}:{f.lineno})")
            for f in reversed(tb)
            if "/convection/" not in f.filename.replace("\\", "/")
        )
    sink(_record("httpAction", path, identity, duration, failure is None, error, frames, new_request_id(), lines))


def _record(
    kind: str,
    path: Any,
    identity: Identity | None,
    duration_ms: float,
    success: bool,
    error: str | None,
    frames: tuple[str, ...],
    rid: str,
    lines: list[str],
) -> CallRecord:
    shown = _canonical(path) if isinstance(path, str) else _shown(path)
    return CallRecord(
        ts=time.time() * 1000.0 - duration_ms,
        path=shown,
        kind=kind,
        origin=_origin_of(shown),
        duration_ms=round(duration_ms, 3),
        success=success,
        error=error,
        frames=frames,
        request_id=rid,
        identity=identity_text(identity),
        lines=tuple(lines),
    )


def _shown(path: Any) -> str:
    try:
        return function_path(path)
    except ConvectionError:
        return str(path)


@functools.lru_cache(maxsize=4096)
def _canonical(path: str) -> str:
    """``_shown`` for a path string, cached: it runs on every call."""
    return _shown(path)


def format_call_line(rec: CallRecord) -> str:
    """One line for a terminal: ``12:00:01 M messages:send 3ms ok`` (``failed: message``)."""
    when = time.strftime("%H:%M:%S", time.localtime(rec.ts / 1000))
    letter = {"query": "Q", "mutation": "M", "action": "A", "httpAction": "H"}.get(rec.kind, "?")
    origin = "" if rec.origin == "client" else f" ({rec.origin})"
    if rec.success:
        status = "ok"
    else:
        first = (rec.error or "").splitlines()
        status = "failed: " + first[0] if first else "failed"
    return f"{when} {letter} {rec.path}{origin} {rec.duration_ms:.0f}ms {status}"
