from __future__ import annotations

from typing import Any

import orjson
import pytest

from convection.protocol import messages as m
from convection.protocol.messages import (
    Action,
    AddQuery,
    Authenticate,
    Connect,
    Event,
    ModifyQuerySet,
    Mutation,
    ProtocolError,
    RemoveQuery,
    StateVersion,
    parse_client_message,
)
from convection.protocol.timestamps import encode_ts
from convection.values.model import Int64


def parse(obj: Any) -> m.ClientMessage:
    return parse_client_message(orjson.dumps(obj).decode())


# --- client messages (examples from PROTOCOL.md §4.3) ----------------------------------


def test_connect() -> None:
    msg = parse_client_message(
        '{"type":"Connect","sessionId":"ff536163-03f7-4de7-ba09-3d73d2b962cd",'
        '"connectionCount":1,"lastCloseReason":"InternalServerError",'
        '"maxObservedTimestamp":"9Lttsc7c6hg=","clientTs":1795490184675}'
    )
    assert isinstance(msg, Connect)
    assert msg.session_id == "ff536163-03f7-4de7-ba09-3d73d2b962cd"
    assert msg.connection_count == 1
    assert msg.last_close_reason == "InternalServerError"
    assert msg.max_observed_timestamp is not None and msg.max_observed_timestamp > 0
    assert msg.client_ts == 1795490184675


def test_connect_minimal_and_null_fields() -> None:
    msg = parse({"type": "Connect", "sessionId": "s", "lastCloseReason": None, "clientTs": 0})
    assert msg == Connect("s", 0, None, None, 0)


def test_modify_query_set_add_and_remove() -> None:
    msg = parse(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [
                {
                    "type": "Add",
                    "queryId": 0,
                    "udfPath": "messages:page",
                    "args": [{"paginationOpts": {"cursor": None, "id": 7, "numItems": 2}}],
                    "journal": "j",
                },
                {"type": "Add", "queryId": 5, "udfPath": "messages:list", "args": [{}]},
                {"type": "Remove", "queryId": 3},
            ],
        }
    )
    assert isinstance(msg, ModifyQuerySet)
    assert (msg.base_version, msg.new_version) == (0, 1)
    add, add2, remove = msg.modifications
    assert add == AddQuery(
        0,
        "messages:page",
        {"paginationOpts": {"cursor": None, "id": 7.0, "numItems": 2.0}},
        None,
        "j",
        None,
    )
    assert isinstance(add2, AddQuery) and add2.journal is None and add2.args == {}
    assert remove == RemoveQuery(3)


def test_empty_modifications() -> None:
    msg = parse({"type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2, "modifications": []})
    assert msg == ModifyQuerySet(1, 2, ())


def test_mutation_args_are_convex_json() -> None:
    msg = parse(
        {
            "type": "Mutation",
            "requestId": 0,
            "udfPath": "messages:send",
            "args": [
                {
                    "b": {"$bytes": "AQID"},
                    "body": "hi",
                    "f": {"$float": "AAAAAAAA+H8="},
                    "n": {"$integer": "BQAAAAAAAAA="},
                }
            ],
        }
    )
    assert isinstance(msg, Mutation)
    assert msg.request_id == 0 and msg.udf_path == "messages:send" and msg.args_error is None
    assert msg.args["b"] == b"\x01\x02\x03"
    assert msg.args["f"] != msg.args["f"]  # NaN
    assert msg.args["n"] == 5 and isinstance(msg.args["n"], Int64)


def test_action_bare_object_args_and_component_path() -> None:
    msg = parse(
        {
            "type": "Action",
            "requestId": 3,
            "udfPath": "messages:act",
            "args": {"x": 1},
            "componentPath": "c",
        }
    )
    assert msg == Action(3, "messages:act", {"x": 1.0}, None, "c")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([{}, {}], "expected one argument object"),
        ([5], "must be an object"),
        ("x", "must be an object"),
        ([{"$bad": 1}], "Invalid arguments"),
        ([{"a": {"$integer": "AAA="}}], "Invalid arguments"),
    ],
)
def test_bad_args_are_a_function_error_not_a_protocol_error(args: Any, fragment: str) -> None:
    msg = parse({"type": "Mutation", "requestId": 1, "udfPath": "a:b", "args": args})
    assert isinstance(msg, Mutation)
    assert msg.args is None and msg.args_error is not None
    assert fragment in msg.args_error and "a:b" in msg.args_error


def test_missing_or_empty_args_are_an_empty_object() -> None:
    assert parse({"type": "Action", "requestId": 1, "udfPath": "a:b"}).args == {}  # type: ignore[union-attr]
    assert parse({"type": "Action", "requestId": 1, "udfPath": "a:b", "args": []}).args == {}  # type: ignore[union-attr]


def test_authenticate_variants() -> None:
    assert parse(
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "jwt"}
    ) == Authenticate(0, "User", "jwt", None)
    assert parse(
        {
            "type": "Authenticate",
            "baseVersion": 1,
            "tokenType": "Admin",
            "value": "key",
            "impersonating": {"subject": "u1", "issuer": "x"},
        }
    ) == Authenticate(1, "Admin", "key", {"subject": "u1", "issuer": "x"})
    assert parse(
        {
            "type": "Authenticate",
            "baseVersion": 1,
            "tokenType": "Admin",
            "value": "key",
            "acting_as": {"tokenIdentifier": "x|u1"},
        }
    ) == Authenticate(1, "Admin", "key", {"tokenIdentifier": "x|u1"})
    assert parse({"type": "Authenticate", "baseVersion": 2, "tokenType": "None"}) == Authenticate(
        2, "None", None, None
    )
    # impersonation is only meaningful for admins; ignored otherwise
    assert parse(
        {
            "type": "Authenticate",
            "baseVersion": 0,
            "tokenType": "User",
            "value": "jwt",
            "impersonating": {"subject": "u"},
        }
    ) == Authenticate(0, "User", "jwt", None)


def test_event() -> None:
    assert parse({"type": "Event", "eventType": "ClientConnect", "event": {"a": 1}}) == Event(
        "ClientConnect", {"a": 1}
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"sessionId":"x"}', '"type"'),
        ('{"type":"Hello"}', "Unknown client message type"),
        ('{"type":"Connect"}', "Connect.sessionId"),
        ('{"type":"Connect","sessionId":"s","clientTs":"x"}', "clientTs"),
        (
            '{"type":"Connect","sessionId":"s","maxObservedTimestamp":"AAAA"}',
            "maxObservedTimestamp",
        ),
        ('{"type":"ModifyQuerySet","baseVersion":0}', "newVersion"),
        ('{"type":"ModifyQuerySet","baseVersion":-1,"newVersion":1}', "u32"),
        ('{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":{}}', "array"),
        (
            '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Upd"}]}',
            "modifications[0].type",
        ),
        (
            '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,'
            '"modifications":[{"type":"Add","queryId":1.5,"udfPath":"a"}]}',
            "queryId",
        ),
        ('{"type":"Mutation","requestId":true,"udfPath":"a"}', "requestId"),
        ('{"type":"Mutation","requestId":1,"udfPath":5}', "udfPath"),
        ('{"type":"Authenticate","baseVersion":0,"tokenType":"Bearer","value":"x"}', "tokenType"),
        ('{"type":"Authenticate","baseVersion":0,"tokenType":"User"}', "value"),
        (
            '{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"k","impersonating":{"name":"n"}}',
            "tokenIdentifier",
        ),
        ('{"type":"Connect","sessionId":"s","x":NaN}', "invalid JSON"),
    ],
)
def test_malformed_messages(text: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.code == "WSMessageInvalidJson"
    assert fragment in info.value.message


def test_integral_float_ids_are_accepted() -> None:
    msg = parse_client_message('{"type":"Mutation","requestId":2.0,"udfPath":"a:b","args":[{}]}')
    assert isinstance(msg, Mutation) and msg.request_id == 2 and type(msg.request_id) is int


# --- server messages (shapes of PROTOCOL.md §4.4) ---------------------------------------


def roundtrip(msg: m.ServerMessage) -> Any:
    return orjson.loads(m.encode_message(msg))


def test_state_version_json() -> None:
    assert StateVersion().to_json() == {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
    v = StateVersion(3, 1, 123456789)
    assert StateVersion.from_json(roundtrip(v.to_json())) == v
    with pytest.raises(ProtocolError):
        StateVersion.from_json({"querySet": 1, "identity": 0, "ts": 5})


def test_transition_with_all_modification_kinds() -> None:
    updated = m.query_updated(0, b"[]", ["[LOG] 'ran'"], None)
    failed = m.query_failed(1, "boom", [], None, b'{"code":"BAD"}')
    failed_plain = m.query_failed(2, "plain", [], "j")
    removed = m.query_removed(3)
    msg = m.transition(
        StateVersion(0, 0, 0),
        StateVersion(1, 0, 10),
        [updated, failed, failed_plain, removed],
        client_clock_skew=None,
        server_ts=1795490157558334820,
    )
    assert roundtrip(msg) == {
        "type": "Transition",
        "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
        "endVersion": {"querySet": 1, "identity": 0, "ts": encode_ts(10)},
        "modifications": [
            {
                "type": "QueryUpdated",
                "queryId": 0,
                "value": [],
                "logLines": ["[LOG] 'ran'"],
                "journal": None,
            },
            {
                "type": "QueryFailed",
                "queryId": 1,
                "errorMessage": "boom",
                "logLines": [],
                "journal": None,
                "errorData": {"code": "BAD"},
            },
            {
                "type": "QueryFailed",
                "queryId": 2,
                "errorMessage": "plain",
                "logLines": [],
                "journal": "j",
            },
            {"type": "QueryRemoved", "queryId": 3},
        ],
        "clientClockSkew": None,
        "serverTs": 1795490157558334820,
    }
    # integers stay JSON integers
    assert '"serverTs":1795490157558334820' in m.encode_message(msg)
    assert '"querySet":1,' in m.encode_message(msg)


def test_transition_without_server_ts() -> None:
    msg = roundtrip(m.transition(StateVersion(), StateVersion(1, 0, 1), []))
    assert "serverTs" not in msg and msg["clientClockSkew"] is None and msg["modifications"] == []


def test_value_is_embedded_verbatim() -> None:
    text = m.encode_message(m.query_updated(7, b'{"n":{"$integer":"BQAAAAAAAAA="}}', [], None))
    assert '"value":{"n":{"$integer":"BQAAAAAAAAA="}}' in text


def test_mutation_responses() -> None:
    ok = roundtrip(m.mutation_response(0, success=True, value_json=b'"f47e"', ts=5, log_lines=[]))
    assert ok == {
        "type": "MutationResponse",
        "requestId": 0,
        "success": True,
        "result": "f47e",
        "ts": encode_ts(5),
        "logLines": [],
    }
    err = roundtrip(
        m.mutation_response(
            2, success=False, error_message="Uncaught ConvexError: c", error_data_json=b'"c"'
        )
    )
    assert err == {
        "type": "MutationResponse",
        "requestId": 2,
        "success": False,
        "result": "Uncaught ConvexError: c",
        "ts": None,
        "logLines": [],
        "errorData": "c",
    }
    plain = roundtrip(m.mutation_response(3, success=False, error_message="nope"))
    assert "errorData" not in plain and plain["ts"] is None
    with pytest.raises(ValueError):
        m.mutation_response(4, success=True, value_json=b"null")


def test_action_responses() -> None:
    assert roundtrip(
        m.action_response(3, success=True, value_json=b'{"a":1}', log_lines=["[INFO] action ran"])
    ) == {
        "type": "ActionResponse",
        "requestId": 3,
        "success": True,
        "result": {"a": 1},
        "logLines": ["[INFO] action ran"],
    }
    failed = roundtrip(
        m.action_response(4, success=False, error_message="x", error_data_json=b"null")
    )
    assert failed == {
        "type": "ActionResponse",
        "requestId": 4,
        "success": False,
        "result": "x",
        "logLines": [],
        "errorData": None,
    }


def test_auth_fatal_ping() -> None:
    assert roundtrip(m.auth_error("bad token", 1, True)) == {
        "type": "AuthError",
        "error": "bad token",
        "baseVersion": 1,
        "authUpdateAttempted": True,
    }
    assert roundtrip(m.fatal_error("x")) == {"type": "FatalError", "error": "x"}
    assert m.encode_message(m.ping()) == '{"type":"Ping"}'


def test_close_reason_is_truncated_on_a_char_boundary() -> None:
    assert m.close_reason("short") == "short"
    long = "é" * 100  # 200 bytes
    cut = m.close_reason(long)
    assert len(cut.encode()) <= 123 and long.startswith(cut)
