"""The errors of the auth layer.

:class:`AuthError` is a token that cannot be accepted; its ``code`` is one of the reference's
codes (docs/auth.md), which the application passes on to clients unchanged:

* ``InvalidAuthHeader``: the token is not a JWT, lacks ``iss``/``sub``/``exp``, its audience
  does not contain the provider's applicationID, it is not valid yet (``nbf``), its algorithm
  is not the provider's, or its signature does not verify (or the provider's keys cannot be
  fetched).
* ``NoAuthProvider``: no provider of ``auth_config.py`` has the token's issuer.
* ``TokenExpired``: ``exp`` (plus the clock leeway) is in the past.

:class:`AuthConfigError` is a bad ``auth_config.py``: raised when the code is loaded or pushed,
never at request time.
"""

from __future__ import annotations

from typing import Final

from convection.errors import ConvectionError

INVALID_AUTH_HEADER: Final = "InvalidAuthHeader"
NO_AUTH_PROVIDER: Final = "NoAuthProvider"
TOKEN_EXPIRED: Final = "TokenExpired"


class AuthError(ConvectionError):
    """A user token was rejected. ``message`` says why (it is sent to the client)."""

    code = INVALID_AUTH_HEADER


class AuthConfigError(ConvectionError):
    """``auth_config.py`` is invalid; the message names the provider and the field."""

    code = "InvalidAuthConfig"
