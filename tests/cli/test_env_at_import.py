"""Deployment environment variables are visible while modules are imported (issue 11.4).

``auth_config.py`` reads ``os.environ`` at import time, as docs/auth.md shows. Through the CLI
entry point: ``convection env set`` works although the module cannot load yet, then
``convection serve`` starts, and a call with a token of that provider is authenticated.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import httpx
import jwt
import orjson
from cli_support import APP, Project, Server, write_project
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

ISSUER = "https://env-at-import.convection.test"

AUTH_CONFIG = '''
import os

providers = [{
    "type": "customJwt",
    "issuer": os.environ["CVT_AUTH_ISSUER"],
    "jwks": os.environ["CVT_AUTH_JWKS"],
    "algorithm": "EdDSA",
}]
'''

WHO = '''
import os

from convection import query

ISSUER_AT_IMPORT = os.environ["CVT_AUTH_ISSUER"]


@query
def me(ctx):
    identity = ctx.auth.get_user_identity()
    return None if identity is None else identity.subject


@query
def issuer(ctx):
    return ISSUER_AT_IMPORT
'''


def _jwks_data_url(key: ed25519.Ed25519PrivateKey) -> str:
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "EdDSA", "use": "sig"})
    return "data:application/json;base64," + base64.b64encode(json.dumps({"keys": [jwk]}).encode()).decode()


def test_env_set_before_the_module_loads_then_serve_uses_it(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    write_project(project.root, {"items.py": APP, "auth_config.py": AUTH_CONFIG, "who.py": WHO})
    assert "CVT_AUTH_ISSUER" not in os.environ  # only the deployment's variables can supply it
    key = ed25519.Ed25519PrivateKey.generate()

    # the modules cannot load without the variables: setting them must not need to load them
    project.ok("env", "set", "CVT_AUTH_ISSUER", ISSUER)
    project.ok("env", "set", "CVT_AUTH_JWKS", _jwks_data_url(key))
    assert project.ok("env", "get", "CVT_AUTH_ISSUER").stdout.strip() == ISSUER
    # in-process: the variables are in place before the import
    assert project.run("who:issuer") == ISSUER
    for name in ("CVT_AUTH_ISSUER", "CVT_AUTH_JWKS"):  # `run` copied them into this process:
        os.environ.pop(name, None)  # the server must not inherit them

    server = Server(project.functions, project.data).start()  # answers /version
    try:
        now = int(time.time())
        token = jwt.encode({"iss": ISSUER, "sub": "user-7", "iat": now, "exp": now + 600}, key,
                           algorithm="EdDSA", headers={"kid": "k1"})
        r = httpx.post(server.url + "/api/query", json={"path": "who:me", "args": {}, "format": "json"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert orjson.loads(r.content)["value"] == "user-7"
    finally:
        server.stop()
