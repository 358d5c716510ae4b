"""Fixtures for the auth tests: signing keys made here (RSA, EC P-256, Ed25519) and a loopback
HTTP server publishing JWKS documents and OIDC discovery documents on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


@dataclass
class Keys:
    rsa: RSAPrivateKey
    rsa2: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    ed: Ed25519PrivateKey


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa2=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
    )


def public_jwk(private: Any, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of a private key (with ``kid`` and, when given, ``alg``)."""
    public = private.public_key()
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    jwk["use"] = "sig"
    return dict(jwk)


def sign(claims: dict[str, Any], private: Any, alg: str, kid: str | None = "k1") -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, private, algorithm=alg, headers=headers)


def claims(iss: str, /, **extra: Any) -> dict[str, Any]:
    """Claims valid for an hour from now, overridable (``exp=None`` drops exp)."""
    now = int(time.time())
    out: dict[str, Any] = {"iss": iss, "sub": "user-1", "iat": now, "exp": now + 3600}
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class JwksServer:
    """Serves JSON documents set with :meth:`set` on http://127.0.0.1:<port>; counts hits."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.status: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                status = server.status.get(self.path, 200)
                doc = server.documents.get(self.path)
                if doc is None:
                    status = 404
                body = json.dumps(doc if doc is not None else {"error": "not found"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def set(self, path: str, document: Any, status: int = 200) -> str:
        self.documents[path] = document
        self.status[path] = status
        return self.url + path

    def set_oidc(self, jwks: dict[str, Any], *, issuer: str | None = None) -> None:
        """Publish a discovery document (issuer = this server) pointing at ``/oidc/jwks``."""
        self.set(
            "/.well-known/openid-configuration",
            {"issuer": issuer or self.url, "jwks_uri": self.url + "/oidc/jwks"},
        )
        self.set("/oidc/jwks", jwks)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@dataclass
class Kit:
    """The helpers above, as a fixture (test modules do not import conftest)."""

    keys: Keys
    server: JwksServer

    public_jwk = staticmethod(public_jwk)
    sign = staticmethod(sign)
    claims = staticmethod(claims)


@pytest.fixture
def kit(keys: Keys, jwks_server: JwksServer) -> Kit:
    return Kit(keys, jwks_server)
