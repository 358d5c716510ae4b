"""Opaque, self-contained pagination cursors and query journals.

A cursor is a position in one query's index range: "after key K" (or END, the range is
exhausted). It is signed (HMAC-SHA256 with a key derived from the instance secret) so clients
cannot forge index positions, and it names the query it belongs to (a hash of table, index,
range and order) so a cursor of another query is rejected with ``InvalidCursor``. It holds no
server-side handle, so it survives restarts.

A journal (returned to clients in ``QueryUpdated.journal``) records the end cursor of a
paginated query's page so reruns keep the same page boundaries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from convection.errors import ConvectionError

END = b"\xffEND"  # sentinel position: past the end of the range (not a valid index key)


class InvalidCursor(ConvectionError):
    code = "InvalidCursor"


@dataclass(frozen=True)
class Cursor:
    query: str  # hash of the query shape
    key: bytes | None  # position: after this key; None = END

    @property
    def is_end(self) -> bool:
        return self.key is None


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"convection-cursor|" + secret).digest()

    def _sign(self, body: bytes) -> str:
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def _verify(self, text: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except Exception:
            raise InvalidCursor(f"InvalidCursor: {text[:40]!r} is not a pagination cursor") from None
        body, mac = raw[:-12], raw[-12:]
        if len(raw) < 13 or not hmac.compare_digest(
            mac, hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        ):
            raise InvalidCursor("InvalidCursor: the cursor was not issued by this deployment")
        return body

    def encode_cursor(self, c: Cursor) -> str:
        body = orjson.dumps(
            {"q": c.query, "k": None if c.key is None else base64.b64encode(c.key).decode()}
        )
        return self._sign(body)

    def decode_cursor(self, text: object, query: str) -> Cursor:
        if not isinstance(text, str):
            raise InvalidCursor(f"InvalidCursor: a cursor must be a string, got {text!r}")
        try:
            data = orjson.loads(self._verify(text))
            q = data["q"]
            k = data["k"]
            key = None if k is None else base64.b64decode(k)
        except InvalidCursor:
            raise
        except Exception:
            raise InvalidCursor("InvalidCursor: the cursor could not be decoded") from None
        if q != query:
            raise InvalidCursor(
                "InvalidCursor: this cursor belongs to a different query (another table, index, "
                "range or order). Start again from cursor None."
            )
        return Cursor(q, key)

    def encode_journal(self, end: Cursor) -> str:
        return "j" + self.encode_cursor(end)

    def decode_journal(self, text: str | None, query: str) -> Cursor | None:
        if not text or not text.startswith("j"):
            return None
        try:
            return self.decode_cursor(text[1:], query)
        except InvalidCursor:
            return None  # a stale journal (other query shape): start fresh
