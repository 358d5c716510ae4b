"""Closing HTTP connections that stall while sending a request (slow or half-sent requests).

uvicorn arms a keep-alive timer only after a response; a connection that sends part of a
request line, headers or body and then nothing more is held open for good. The protocol
class made here (:func:`protocol_class`, passed to ``uvicorn.Config(http=...)``) closes a
connection that has received no byte for ``idle_timeout_s`` while the server is waiting for
the client: before the first request, inside a request's head, or inside its body.

Invariants:
* a request that has fully arrived is never cut by this timer, however long the app takes
  (queries and actions have their own time limits);
* while uvicorn itself paused reading (the app has not consumed the body buffered so far)
  the client is not idle and the timer waits;
* after an upgrade to WebSocket the timer stops (the sync endpoint has its own Connect
  timeout, ``SYNC_CONNECT_TIMEOUT_MS``).

One timer per connection, re-armed lazily: ``data_received`` only records the time.

The same class sends a response with a known length in **one write**: uvicorn writes the
status line and headers when the app starts the response and the body in a second write;
each write is a ``send`` syscall taken while holding the GIL (on loopback the kernel runs
the receiver's TCP path inside it), about a third of the server's CPU for a small cached
query (py-spy, bench/PROFILES.md). :class:`_OneWrite` holds the head of a response that has
a ``content-length`` until its body comes; chunked (streaming) responses are not held.
"""

from __future__ import annotations

import asyncio
from typing import Any


def protocol_class(idle_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with the idle timer."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class StallTimeoutProtocol(base):  # type: ignore[misc]
        _stall_timer: asyncio.TimerHandle | None = None
        _last_rx = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._last_rx = self.loop.time()
            self._arm(idle_timeout_s)

        def data_received(self, data: bytes) -> None:
            self._last_rx = self.loop.time()
            super().data_received(data)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            cycle = getattr(self, "cycle", None)
            if cycle is not None and hasattr(cycle, "chunked_encoding") and not isinstance(cycle.transport, _OneWrite):
                cycle.transport = _OneWrite(cycle.transport, cycle)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None
            super().connection_lost(exc)

        def _arm(self, delay: float) -> None:
            self._stall_timer = self.loop.call_later(max(delay, 0.01), self._check_stall)

        def _check_stall(self) -> None:
            self._stall_timer = None
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            idle = self.loop.time() - self._last_rx
            if idle < idle_timeout_s or not self._waiting_for_client():
                self._arm(idle_timeout_s - idle if idle < idle_timeout_s else idle_timeout_s)
                return
            transport.close()

        def _waiting_for_client(self) -> bool:
            """True while the next step is the client's: no request yet, a head in
            progress, or a body not complete (and reading is not paused by us)."""
            cycle = getattr(self, "cycle", None)
            if cycle is None or cycle.response_complete:
                return True
            if not cycle.more_body:
                return False  # the request arrived: the app is working on it
            flow = getattr(self, "flow", None)
            return not (flow is not None and flow.read_paused)

    return StallTimeoutProtocol


class _OneWrite:
    """A request cycle's view of its transport that holds the response head (the first write
    after the response started, when it has a content-length) and sends it with the next
    write, the body. Everything else is the transport's."""

    __slots__ = ("_cycle", "_head_seen", "_held", "_transport")

    def __init__(self, transport: Any, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
            return
        cycle = self._cycle
        if (
            not self._head_seen
            and cycle.response_started
            and cycle.chunked_encoding is False  # a content-length: the body follows at once
            and cycle.scope.get("method") != "HEAD"  # no body write would follow
        ):
            self._head_seen = True
            self._held = data  # the head: sent with the body
            return
        self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
