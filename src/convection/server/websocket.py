"""The WebSocket endpoint of the sync protocol: plugs a Starlette WebSocket into a
:class:`SyncWorker` (text frames in and out; the worker decides everything else).

:class:`SyncConnections` keeps the live workers of one server for ``/metrics`` (connections,
sync query subscriptions, Transitions sent). It is touched only on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from convection import knobs
from convection.application.interface import ApplicationInterface
from convection.sync.worker import SyncWorker

log = logging.getLogger("convection.sync")


class SyncConnections:
    """The live sync connections of one server (``application/metrics.py``'s ``SyncSource``).
    Counts only grow, except ``connections_open`` and ``query_subscriptions``."""

    def __init__(self) -> None:
        self.live: set[SyncWorker] = set()
        self.connections_total = 0
        self._overflows_of_closed = 0
        self._transitions_of_closed = 0

    def add(self, worker: SyncWorker) -> None:
        self.live.add(worker)
        self.connections_total += 1

    def remove(self, worker: SyncWorker) -> None:
        if worker in self.live:
            self.live.discard(worker)
            self._transitions_of_closed += worker.outbox.transitions_sent
            if worker.outbox.overflowed:
                self._overflows_of_closed += 1

    @property
    def connections_open(self) -> int:
        return len(self.live)

    def transitions_sent(self) -> int:
        return self._transitions_of_closed + sum(w.outbox.transitions_sent for w in self.live)

    @property
    def outbox_overflows(self) -> int:
        """Connections closed because their client stopped reading (1013 OutboxFull)."""
        return self._overflows_of_closed + sum(1 for w in self.live if w.outbox.overflowed)

    def outbox_bytes(self) -> int:
        """Bytes queued unsent on the live connections."""
        return sum(w.outbox.queued_bytes for w in self.live)

    def query_subscriptions(self) -> int:
        """Queries in the query sets of the live connections."""
        return sum(len(w.state.queries) for w in self.live)


async def sync_endpoint(
    websocket: WebSocket, app: ApplicationInterface, connections: SyncConnections | None = None
) -> None:
    await websocket.accept()

    async def send(text: str) -> None:
        await websocket.send_text(text)

    async def close(code: int | None, reason: str) -> None:
        if websocket.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(Exception):
            if code is None:
                await websocket.close()
            else:
                await websocket.close(code=code, reason=reason[:123])

    worker = SyncWorker(app, send=send, close=close)
    connect_deadline = asyncio.get_running_loop().time() + knobs.SYNC_CONNECT_TIMEOUT_MS / 1000
    try:
        async with worker:
            if connections is not None:
                connections.add(worker)
            try:
                while not worker.closed:
                    if worker.state.session_id is None:
                        # Until Connect arrives the socket costs memory and holds nothing:
                        # one that stays silent is closed (knob SYNC_CONNECT_TIMEOUT_MS).
                        try:
                            async with asyncio.timeout_at(connect_deadline):
                                frame = await websocket.receive()
                        except TimeoutError:
                            log.info("sync: no Connect within %d ms; closing", knobs.SYNC_CONNECT_TIMEOUT_MS)
                            await close(1000, "ConnectTimeout")
                            break
                    else:
                        frame = await websocket.receive()
                    if frame["type"] == "websocket.disconnect":
                        break
                    text = frame.get("text")
                    if text is not None:
                        await worker.handle_text(text)
                    else:
                        await worker.handle_bytes(frame.get("bytes") or b"")
            except WebSocketDisconnect:
                pass
            except Exception:
                log.exception("sync connection failed")
    finally:
        if connections is not None:
            connections.remove(worker)
