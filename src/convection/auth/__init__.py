"""auth: JWT verification (OIDC discovery, custom JWT/JWKS) into user identities."""
