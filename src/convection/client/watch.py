"""A minimal sync-protocol subscriber: watch one query on a running backend and yield every
new result (``convection run PATH --watch``). Depends only on values/ and protocol/.

It speaks just enough of the protocol: Connect, an optional admin Authenticate, one
ModifyQuerySet Add, then every Transition's QueryUpdated/QueryFailed for that query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from convection.values.json import from_convex_json, to_convex_json


@dataclass
class WatchUpdate:
    success: bool
    value: Any = None
    error_message: str = ""
    error_data: Any = None
    log_lines: tuple[str, ...] = ()


def ws_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/api/sync"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/api/sync"
    raise ValueError(f"not an http(s) URL: {url!r}")


def watch(url: str, path: str, args: Any, *, admin_key: str | None = None, timeout_s: float = 30.0) -> Iterator[WatchUpdate]:
    """Yield the query's result now and after every change, until the caller stops."""
    from websockets.sync.client import connect

    with connect(ws_url(url), open_timeout=timeout_s, max_size=None, additional_headers={"Convex-Client": "convection-cli-0.1.0"}) as ws:
        ws.send(orjson.dumps({
            "type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
            "lastCloseReason": "InitialConnect", "clientTs": 0,
        }).decode())
        if admin_key:
            ws.send(orjson.dumps({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": admin_key}).decode())
        ws.send(orjson.dumps({
            "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
            "modifications": [{"type": "Add", "queryId": 0, "udfPath": path, "args": [to_convex_json(args)]}],
        }).decode())
        while True:
            msg = orjson.loads(ws.recv())
            kind = msg.get("type")
            if kind in ("FatalError", "AuthError"):
                raise ConnectionError(f"{kind}: {msg.get('error')}")
            if kind != "Transition":
                continue
            for mod in msg.get("modifications", []):
                if mod.get("queryId") != 0:
                    continue
                if mod["type"] == "QueryUpdated":
                    yield WatchUpdate(True, from_convex_json(mod.get("value")), log_lines=tuple(mod.get("logLines", ())))
                elif mod["type"] == "QueryFailed":
                    data = from_convex_json(mod["errorData"]) if "errorData" in mod else None
                    yield WatchUpdate(False, error_message=mod.get("errorMessage", ""), error_data=data,
                                      log_lines=tuple(mod.get("logLines", ())))
