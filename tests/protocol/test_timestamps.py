from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convection.protocol.timestamps import TS_MAX, TimestampError, decode_ts, encode_ts


def test_zero_and_known_values() -> None:
    assert encode_ts(0) == "AAAAAAAAAAA="
    assert decode_ts("AAAAAAAAAAA=") == 0
    assert encode_ts(1) == "AQAAAAAAAAA="
    # A captured value from PROTOCOL.md §4.4 round-trips and is little-endian.
    ns = decode_ts("c9Yqpsjc6hg=")
    assert ns == struct.unpack("<Q", base64.b64decode("c9Yqpsjc6hg="))[0]
    assert encode_ts(ns) == "c9Yqpsjc6hg="


@given(st.integers(min_value=0, max_value=TS_MAX))
def test_round_trip(ns: int) -> None:
    text = encode_ts(ns)
    assert len(text) == 12 and text.endswith("=")
    assert decode_ts(text) == ns


@given(st.integers(min_value=0, max_value=TS_MAX))
def test_url_safe_alphabet_and_missing_padding_are_accepted(ns: int) -> None:
    text = encode_ts(ns)
    assert decode_ts(text.replace("+", "-").replace("/", "_")) == ns
    assert decode_ts(text.rstrip("=")) == ns


@pytest.mark.parametrize("bad", [-1, TS_MAX + 1, 1 << 64, 1.0, True, "0", None])
def test_encode_rejects_out_of_range_and_non_ints(bad: object) -> None:
    with pytest.raises(TimestampError) as info:
        encode_ts(bad)  # type: ignore[arg-type]
    assert info.value.code == "InvalidTimestamp"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "AAAA",  # 3 bytes
        "AAAAAAAAAAAAAAA=",  # 11 bytes
        "AAAAAAAAAA==",  # 7 bytes
        "AAAAAAAAAAB=",  # non-canonical trailing bits
        "AAAAAAAA AA=",  # whitespace
        "AAAAAAAAAA*=",  # not base64
        "AAAAAAAAAIA=",  # 2^63: above i64::MAX
        "////////////",  # 9 bytes worth of chars
        "ÀAAAAAAAAAA=",
        0,
        None,
        b"AAAAAAAAAAA=",
    ],
)
def test_decode_is_strict(bad: object) -> None:
    with pytest.raises(TimestampError) as info:
        decode_ts(bad)
    assert info.value.code == "InvalidTimestamp"
