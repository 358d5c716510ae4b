"""Transitions spliced from shared encoded results are the JSON the message dicts give."""

from __future__ import annotations

import orjson
import pytest

from convection.functions.outcome import FunctionOutcome
from convection.protocol import messages as msgs
from convection.protocol import splice
from convection.protocol.messages import StateVersion

OUTCOMES = [
    FunctionOutcome(success=True, value_json=b'{"a":[1,2,"x\\u00e9"]}', log_lines=["one", 'two "q"']),
    FunctionOutcome(success=True, value_json=b"null"),
    FunctionOutcome(success=False, error_message='Uncaught Error: "bad"\nline', log_lines=["l"]),
    FunctionOutcome(success=False, error_message="ConvexError", has_error_data=True, error_data_json=b'{"code":1}'),
]


def dict_modification(query_id: int, outcome: FunctionOutcome, journal: str | None) -> msgs.ServerMessage:
    if outcome.success:
        return msgs.query_updated(query_id, outcome.value_json, outcome.log_lines, journal)
    return msgs.query_failed(
        query_id, outcome.error_message, outcome.log_lines, journal,
        outcome.error_data_json if outcome.has_error_data else None,
    )


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("journal", [None, "j\u00e9"])
def test_a_spliced_modification_is_byte_identical(outcome: FunctionOutcome, journal: str | None) -> None:
    body = splice.result_body(outcome)
    spliced = splice.query_modification(7, outcome.success, body, journal, splice.error_data_suffix(outcome))
    assert spliced == orjson.dumps(dict_modification(7, outcome, journal))


@pytest.mark.parametrize("skew", [None, -12])
@pytest.mark.parametrize("server_ts", [None, 1_700_000_000_123_456_789])
def test_a_spliced_transition_is_byte_identical(skew: int | None, server_ts: int | None) -> None:
    start, end = StateVersion(1, 0, 5), StateVersion(2, 1, 1_700_000_000_000_000_000)
    mods = [(0, OUTCOMES[0]), (3, OUTCOMES[3])]
    spliced = splice.transition(
        start, end,
        [splice.query_modification(q, o.success, splice.result_body(o), None, splice.error_data_suffix(o)) for q, o in mods]
        + [splice.query_removed(9)],
        client_clock_skew=skew, server_ts=server_ts,
    )
    expected = msgs.transition(
        start, end, [*(dict_modification(q, o, None) for q, o in mods), msgs.query_removed(9)],
        client_clock_skew=skew, server_ts=server_ts,
    )
    assert spliced == orjson.dumps(expected)
    assert orjson.loads(spliced)["modifications"][1]["errorData"] == {"code": 1}


@pytest.mark.parametrize("query_id", [0, 9, 4_294_967_295])
def test_a_spliced_query_removed_is_byte_identical(query_id: int) -> None:
    assert splice.query_removed(query_id) == orjson.dumps(msgs.query_removed(query_id))
