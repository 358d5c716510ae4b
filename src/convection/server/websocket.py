"""The WebSocket endpoint of the sync protocol: plugs a Starlette WebSocket into a
:class:`SyncWorker` (text frames in and out; the worker decides everything else)."""

from __future__ import annotations

import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from convection.application.interface import ApplicationInterface
from convection.sync.worker import SyncWorker

log = logging.getLogger("convection.sync")


async def sync_endpoint(websocket: WebSocket, app: ApplicationInterface) -> None:
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
    async with worker:
        try:
            while not worker.closed:
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
