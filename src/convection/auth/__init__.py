"""auth: user JWTs into identities (docs/auth.md).

``providers.py`` parses ``auth_config.py`` (OIDC and custom JWT providers), ``jwks.py`` fetches
and caches their public keys, ``verifier.py`` verifies tokens (``TokenVerifier``) and maps
their claims to UserIdentity attributes; ``errors.py`` holds ``AuthError`` and
``AuthConfigError``. Imported by the application layer; imports nothing above ``model``.
"""
