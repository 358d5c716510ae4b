"""Auth providers of the e2e auth app. The test sets the loopback URLs before starting the
server: ``E2E_AUTH_JWKS_URL`` (a custom JWT provider's JWKS) and ``E2E_AUTH_OIDC_DOMAIN`` (an
OIDC provider whose discovery document is served there)."""

import os

providers = [
    {
        "type": "customJwt",
        "issuer": "https://e2e.convection.test",
        "jwks": os.environ["E2E_AUTH_JWKS_URL"],
        "algorithm": "RS256",
        "applicationID": "e2e-app",
    },
]

if os.environ.get("E2E_AUTH_OIDC_DOMAIN"):
    providers.append({"domain": os.environ["E2E_AUTH_OIDC_DOMAIN"], "applicationID": "convex"})
