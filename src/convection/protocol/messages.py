"""Messages of the Convex WebSocket sync protocol (docs/internals/protocol.md).

Client → server: :func:`parse_client_message` turns one text frame into a typed, validated
message (:class:`Connect`, :class:`ModifyQuerySet` of :class:`AddQuery` / :class:`RemoveQuery`,
:class:`Mutation`, :class:`Action`, :class:`Authenticate`, :class:`Event`) or raises
:class:`ProtocolError` saying which field of which message was wrong. Unknown extra fields are
ignored (forward compatibility); unknown message types are errors.

Function arguments are decoded here (``[obj]`` or a bare ``obj``, Convex JSON) but a bad
argument is *not* a protocol error: the reference treats it as a function error, so the
message is still returned, with ``args_error`` set and ``args`` None. The caller answers it
with a failed MutationResponse / ActionResponse / QueryFailed.

Server → client: the builders return plain dicts shaped exactly as the official clients
require (every required key present, integers as JSON integers, timestamps as base64
strings); :func:`encode_message` serializes one with orjson. Function results are embedded
pre-serialized with ``orjson.Fragment(outcome.value_json)``, so a value that fans out to many
sockets is serialized once. Builders never mutate their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import orjson

from convection.errors import ConvectionError
from convection.protocol.timestamps import TimestampError, decode_ts, encode_ts
from convection.values.json import from_convex_json

U32_MAX: Final = (1 << 32) - 1

# WebSocket close codes used by the sync protocol (docs/internals/protocol.md).
CLOSE_NORMAL: Final = 1000
"""Also used where the reference sends a close frame without a status code (ASGI cannot)."""
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013
MAX_CLOSE_REASON_BYTES: Final = 123

ServerMessage: TypeAlias = dict[str, Any]
"""A server → client message, ready for :func:`encode_message`."""

TokenType: TypeAlias = Literal["User", "Admin", "None"]


class ProtocolError(ConvectionError):
    """An inbound frame is not a valid client message.

    ``code`` is the reference's short code: ``WSMessageInvalidJson`` for unparseable JSON and
    for a message of the wrong shape (the reference does not tell them apart).
    """

    code = "WSMessageInvalidJson"


# --------------------------------------------------------------------------------------
# Versions


# The types built for every ModifyQuerySet and Transition (StateVersion, AddQuery, RemoveQuery,
# ModifyQuerySet) are plain slotted dataclasses, not frozen ones: a frozen dataclass sets each
# field through object.__setattr__, which made building them a tenth of a cached query's
# sync-layer CPU. They are values all the same: never mutate one (StateVersion stays hashable).


@dataclass(slots=True, unsafe_hash=True)
class StateVersion:
    """``{querySet, identity, ts}``: the version a Transition starts from or ends at."""

    query_set: int = 0
    identity: int = 0
    ts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"querySet": self.query_set, "identity": self.identity, "ts": encode_ts(self.ts)}

    @classmethod
    def from_json(cls, obj: Any) -> StateVersion:
        if not isinstance(obj, dict):
            raise ProtocolError(f"A StateVersion must be an object, got {_kind(obj)}.")
        return cls(
            query_set=_u32(obj, "querySet", "StateVersion"),
            identity=_u32(obj, "identity", "StateVersion"),
            ts=_ts(obj, "ts", "StateVersion"),
        )

    def precedes_or_equals(self, other: StateVersion) -> bool:
        """True when no component of ``other`` is behind this version."""
        return (
            self.query_set <= other.query_set
            and self.identity <= other.identity
            and self.ts <= other.ts
        )


INITIAL_VERSION: Final = StateVersion()


# --------------------------------------------------------------------------------------
# Client -> server


@dataclass(frozen=True, slots=True)
class Connect:
    """First message of every socket. ``client_ts`` is ms since the epoch (0 from Rust)."""

    session_id: str
    connection_count: int = 0
    last_close_reason: str | None = None
    max_observed_timestamp: int | None = None
    client_ts: int | None = None


@dataclass(slots=True, unsafe_hash=True)
class AddQuery:
    """Subscribe ``query_id`` to ``udf_path(args)``; ``journal`` None means no journal."""

    query_id: int
    udf_path: str
    args: Any
    args_error: str | None = None
    journal: str | None = None
    component_path: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class RemoveQuery:
    query_id: int


QuerySetModification: TypeAlias = AddQuery | RemoveQuery


@dataclass(slots=True, unsafe_hash=True)
class ModifyQuerySet:
    base_version: int
    new_version: int
    modifications: tuple[QuerySetModification, ...] = ()


@dataclass(frozen=True, slots=True)
class Mutation:
    request_id: int
    udf_path: str
    args: Any
    args_error: str | None = None
    component_path: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    request_id: int
    udf_path: str
    args: Any
    args_error: str | None = None
    component_path: str | None = None


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Set the socket's identity. ``value`` is the JWT (User) or admin key (Admin), None for
    ``tokenType: "None"``; ``impersonating`` (alias ``acting_as``) only with Admin."""

    base_version: int
    token_type: TokenType
    value: str | None = None
    impersonating: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """Client telemetry; accepted and ignored."""

    event_type: str
    event: Any = None


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate | Event


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one text frame; raises :class:`ProtocolError` (code ``WSMessageInvalidJson``)."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"Received invalid JSON on the WebSocket: {exc}.") from exc
    return client_message_from_json(obj)


def client_message_from_json(obj: Any) -> ClientMessage:
    """Validate an already parsed JSON value as a client message."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"A client message must be a JSON object, got {_kind(obj)}.")
    kind = obj.get("type")
    if kind == "Connect":
        return _parse_connect(obj)
    if kind == "ModifyQuerySet":
        return _parse_modify_query_set(obj)
    if kind == "Mutation":
        request_id = _u32(obj, "requestId", "Mutation")
        path = _str(obj, "udfPath", "Mutation")
        args, args_error = decode_args(obj.get("args"), path)
        return Mutation(
            request_id, path, args, args_error, _opt_str(obj, "componentPath", "Mutation")
        )
    if kind == "Action":
        request_id = _u32(obj, "requestId", "Action")
        path = _str(obj, "udfPath", "Action")
        args, args_error = decode_args(obj.get("args"), path)
        return Action(request_id, path, args, args_error, _opt_str(obj, "componentPath", "Action"))
    if kind == "Authenticate":
        return _parse_authenticate(obj)
    if kind == "Event":
        return Event(_str(obj, "eventType", "Event"), obj.get("event"))
    if kind is None:
        raise ProtocolError('A client message needs a "type" field.')
    raise ProtocolError(
        f"Unknown client message type {kind!r}; expected Connect, ModifyQuerySet, Mutation, "
        "Action, Authenticate or Event."
    )


def decode_args(raw: Any, udf_path: str) -> tuple[Any, str | None]:
    """The argument object of a call from ``[obj]``, ``[]`` or a bare ``obj`` (Convex JSON).

    Returns ``(args, None)`` or ``(None, message)``; the message is what the client sees as
    the function's error.
    """
    if raw is None:
        raw = {}
    if isinstance(raw, list):
        if len(raw) == 0:
            raw = {}
        elif len(raw) == 1:
            raw = raw[0]
        else:
            return None, (
                f"Invalid arguments for {udf_path}: expected one argument object, "
                f"got {len(raw)} arguments."
            )
    if not isinstance(raw, dict):
        return None, (
            f"Invalid arguments for {udf_path}: the arguments must be an object, got {_kind(raw)}."
        )
    try:
        return from_convex_json(raw), None
    except (ConvectionError, ValueError, TypeError) as exc:
        return None, f"Invalid arguments for {udf_path}: {exc}"


def _parse_connect(obj: dict[str, Any]) -> Connect:
    session_id = _str(obj, "sessionId", "Connect")
    count = obj.get("connectionCount")
    max_observed = obj.get("maxObservedTimestamp")
    client_ts = obj.get("clientTs")
    if client_ts is not None and not _is_int(client_ts):
        raise ProtocolError(f"Connect.clientTs must be an integer or null, got {_kind(client_ts)}.")
    return Connect(
        session_id=session_id,
        connection_count=0 if count is None else _u32(obj, "connectionCount", "Connect"),
        last_close_reason=_opt_str(obj, "lastCloseReason", "Connect"),
        max_observed_timestamp=None
        if max_observed is None
        else _ts(obj, "maxObservedTimestamp", "Connect"),
        client_ts=None if client_ts is None else int(client_ts),
    )


def _parse_modify_query_set(obj: dict[str, Any]) -> ModifyQuerySet:
    base = _u32(obj, "baseVersion", "ModifyQuerySet")
    new = _u32(obj, "newVersion", "ModifyQuerySet")
    raw_mods = obj.get("modifications", [])
    if not isinstance(raw_mods, list):
        raise ProtocolError(
            f"ModifyQuerySet.modifications must be an array, got {_kind(raw_mods)}."
        )
    mods: list[QuerySetModification] = []
    for i, mod in enumerate(raw_mods):
        where = _ModificationAt(i)
        if not isinstance(mod, dict):
            raise ProtocolError(f"{where} must be an object, got {_kind(mod)}.")
        kind = mod.get("type")
        if kind == "Add":
            path = _str(mod, "udfPath", where)
            args, args_error = decode_args(mod.get("args"), path)
            mods.append(
                AddQuery(
                    _u32(mod, "queryId", where),
                    path,
                    args,
                    args_error,
                    _opt_str(mod, "journal", where),
                    _opt_str(mod, "componentPath", where),
                )
            )
        elif kind == "Remove":
            mods.append(RemoveQuery(_u32(mod, "queryId", where)))
        else:
            raise ProtocolError(f'{where}.type must be "Add" or "Remove", got {kind!r}.')
    return ModifyQuerySet(base, new, tuple(mods))


class _ModificationAt:
    """``ModifyQuerySet.modifications[i]`` for error messages, formatted only if one is
    raised (an f-string per modification was a tenth of the parse)."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __str__(self) -> str:
        return f"ModifyQuerySet.modifications[{self.i}]"


def _parse_authenticate(obj: dict[str, Any]) -> Authenticate:
    base = _u32(obj, "baseVersion", "Authenticate")
    token_type = obj.get("tokenType")
    if token_type not in ("User", "Admin", "None"):
        raise ProtocolError(
            f'Authenticate.tokenType must be "User", "Admin" or "None", got {token_type!r}.'
        )
    value: str | None = None
    if token_type != "None":
        value = _str(obj, "value", "Authenticate")
    impersonating = obj.get("impersonating")
    if impersonating is None:
        impersonating = obj.get("acting_as")
    if token_type != "Admin":
        impersonating = None  # only an admin can act as a user; the reference ignores it
    if impersonating is not None:
        if not isinstance(impersonating, dict):
            raise ProtocolError(
                f"Authenticate.impersonating must be an object, got {_kind(impersonating)}."
            )
        if "tokenIdentifier" not in impersonating and not (
            "issuer" in impersonating and "subject" in impersonating
        ):
            raise ProtocolError(
                "Authenticate.impersonating needs tokenIdentifier, or both issuer and subject."
            )
    return Authenticate(base, token_type, value, impersonating)


# --------------------------------------------------------------------------------------
# Server -> client


def transition(
    start: StateVersion,
    end: StateVersion,
    modifications: list[ServerMessage],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> ServerMessage:
    """A Transition from ``start`` to ``end``. ``server_ts`` is wall-clock **ns** (omitted
    when None); ``clientClockSkew`` (ms) is always present, possibly null."""
    msg: ServerMessage = {
        "type": "Transition",
        "startVersion": start.to_json(),
        "endVersion": end.to_json(),
        "modifications": modifications,
        "clientClockSkew": client_clock_skew,
    }
    if server_ts is not None:
        msg["serverTs"] = server_ts
    return msg


def query_updated(
    query_id: int, value_json: bytes, log_lines: list[str], journal: str | None
) -> ServerMessage:
    """``value_json`` is the Convex JSON of the result, embedded without re-serializing."""
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": orjson.Fragment(value_json),
        "logLines": log_lines,
        "journal": journal,
    }


def query_failed(
    query_id: int,
    error_message: str,
    log_lines: list[str],
    journal: str | None,
    error_data_json: bytes | None = None,
) -> ServerMessage:
    """``error_data_json`` (Convex JSON) only for a ConvexError; None leaves the key out."""
    msg: ServerMessage = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": error_message,
        "logLines": log_lines,
        "journal": journal,
    }
    if error_data_json is not None:
        msg["errorData"] = orjson.Fragment(error_data_json)
    return msg


def query_removed(query_id: int) -> ServerMessage:
    return {"type": "QueryRemoved", "queryId": query_id}


def mutation_response(
    request_id: int,
    *,
    success: bool,
    value_json: bytes = b"null",
    error_message: str = "",
    error_data_json: bytes | None = None,
    ts: int | None = None,
    log_lines: list[str] | None = None,
) -> ServerMessage:
    """On success ``ts`` (the commit ts) is mandatory; on failure ``result`` is the message
    string, ``ts`` is null and ``errorData`` is present only for a ConvexError."""
    if success:
        if ts is None:
            raise ValueError(f"MutationResponse {request_id}: a successful mutation needs a ts")
        return {
            "type": "MutationResponse",
            "requestId": request_id,
            "success": True,
            "result": orjson.Fragment(value_json),
            "ts": encode_ts(ts),
            "logLines": log_lines or [],
        }
    msg: ServerMessage = {
        "type": "MutationResponse",
        "requestId": request_id,
        "success": False,
        "result": error_message,
        "ts": None,
        "logLines": log_lines or [],
    }
    if error_data_json is not None:
        msg["errorData"] = orjson.Fragment(error_data_json)
    return msg


def action_response(
    request_id: int,
    *,
    success: bool,
    value_json: bytes = b"null",
    error_message: str = "",
    error_data_json: bytes | None = None,
    log_lines: list[str] | None = None,
) -> ServerMessage:
    """The MutationResponse shape without ``ts``."""
    msg: ServerMessage = {
        "type": "ActionResponse",
        "requestId": request_id,
        "success": success,
        "result": orjson.Fragment(value_json) if success else error_message,
        "logLines": log_lines or [],
    }
    if not success and error_data_json is not None:
        msg["errorData"] = orjson.Fragment(error_data_json)
    return msg


def auth_error(error: str, base_version: int, auth_update_attempted: bool) -> ServerMessage:
    """``base_version`` is the identity version of the last Transition sent (docs/internals/protocol.md)."""
    return {
        "type": "AuthError",
        "error": error,
        "baseVersion": base_version,
        "authUpdateAttempted": auth_update_attempted,
    }


def fatal_error(error: str) -> ServerMessage:
    """Terminates JS clients for good: only for deterministic client bugs (docs/internals/protocol.md)."""
    return {"type": "FatalError", "error": error}


def ping() -> ServerMessage:
    return {"type": "Ping"}


def encode_message(message: ServerMessage) -> str:
    """The JSON text of a server message (one WebSocket text frame)."""
    return orjson.dumps(message).decode("utf-8")


def close_reason(reason: str) -> str:
    """``reason`` cut to the 123 UTF-8 bytes a close frame can carry, on a char boundary."""
    raw = reason.encode("utf-8")
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return raw[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


# --------------------------------------------------------------------------------------
# Field helpers


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _u32(obj: dict[str, Any], key: str, where: object) -> int:
    value: Any = obj.get(key)
    if type(value) is int and 0 <= value <= U32_MAX:  # the usual case, checked first
        return value
    if not _is_int(value):
        raise ProtocolError(f"{where}.{key} must be an integer, got {_kind(value)}.")
    n = int(value)
    if not 0 <= n <= U32_MAX:
        raise ProtocolError(f"{where}.{key} = {n} is outside the u32 range.")
    return n


def _str(obj: dict[str, Any], key: str, where: object) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{where}.{key} must be a string, got {_kind(value)}.")
    return value


def _opt_str(obj: dict[str, Any], key: str, where: object) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{where}.{key} must be a string or null, got {_kind(value)}.")
    return value


def _ts(obj: dict[str, Any], key: str, where: str) -> int:
    try:
        return decode_ts(obj.get(key))
    except TimestampError as exc:
        raise ProtocolError(f"{where}.{key}: {exc}") from exc
