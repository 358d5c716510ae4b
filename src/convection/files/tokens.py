"""Upload tokens: what ``ctx.storage.generate_upload_url()`` puts in ``?token=``.

A token is ``base64url(version ‖ issued_ms ‖ nonce ‖ mac)`` (no padding): version 1 (1 byte),
the issue time in ms since the epoch (8 bytes, big-endian), 8 random bytes, and the first 16
bytes of HMAC-SHA256 over the rest with a key derived from the instance secret (purpose
``store file authorization``, as Convex's keybroker names it). It is valid for
``STORAGE_UPLOAD_URL_VALIDITY_MS`` (1 hour, like Convex) after it was issued and may be used
more than once in that time, as in Convex. Nothing is stored server-side: a token of another
deployment (another secret) or a changed byte fails the MAC.

Times come from the caller (the database clock), so tests move a manual clock instead of
sleeping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from convection import knobs
from convection.model.file_storage import FileStorageError

_VERSION = 1
_HEAD = struct.Struct(">BQ8s")
_MAC_BYTES = 16
_PURPOSE = b"convection|store file authorization"


class UploadTokens:
    """Issues and verifies upload tokens of one deployment."""

    def __init__(self, secret: bytes, *, validity_ms: int | None = None) -> None:
        self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
        self.validity_ms = knobs.STORAGE_UPLOAD_URL_VALIDITY_MS if validity_ms is None else validity_ms

    def _mac(self, head: bytes) -> bytes:
        return hmac.new(self._key, head, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, now_ms: float) -> str:
        head = _HEAD.pack(_VERSION, max(0, int(now_ms)), os.urandom(8))
        return base64.urlsafe_b64encode(head + self._mac(head)).rstrip(b"=").decode()

    def verify(self, token: str | None, now_ms: float) -> int:
        """The token's issue time (ms); raises ``StorageTokenInvalid`` or
        ``StorageTokenExpired``."""
        if not token:
            raise FileStorageError(
                "Missing upload token: POST to the URL returned by ctx.storage.generate_upload_url() "
                "(it ends with ?token=...)",
                code="StorageTokenInvalid",
            )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        head, mac = raw[: _HEAD.size], raw[_HEAD.size :]
        if len(head) != _HEAD.size or len(mac) != _MAC_BYTES or head[0] != _VERSION or not hmac.compare_digest(
            mac, self._mac(head)
        ):
            raise FileStorageError(
                "Invalid upload token: it was not issued by this deployment or was altered. Get a "
                "fresh URL from ctx.storage.generate_upload_url().",
                code="StorageTokenInvalid",
            )
        _version, issued_ms, _nonce = _HEAD.unpack(head)
        if now_ms > issued_ms + self.validity_ms:
            raise FileStorageError(
                f"Expired upload token: upload URLs are valid for {self.validity_ms / 60000:g} minutes "
                "after ctx.storage.generate_upload_url() made them. Generate a new one right before "
                "uploading.",
                code="StorageTokenExpired",
            )
        return int(issued_ms)
