"""Issuing access tokens (RS256 JWT) and opaque refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid

from jose import jwt

from gateway.config import GatewaySettings
from gateway.keys import SigningKeys
from shared.auth import ALGORITHM


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def successor_refresh_token(secret: bytes, token: str) -> str:
    """The token that replaces ``token`` when it is spent.

    Derived rather than random, so that a retry within the grace window gets the very same
    token back without any token being stored in the clear. Keyed with a secret only the
    gateway holds: whoever holds a spent token cannot compute its successor offline, only
    ask for it, which after the grace window revokes the family.
    """
    digest = hmac.new(secret, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self, keys: SigningKeys, settings: GatewaySettings) -> None:
        self._keys = keys
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.access_ttl = settings.access_token_ttl_seconds
        self.refresh_ttl = settings.refresh_token_ttl_seconds
        self.family_lifetime = settings.refresh_family_lifetime_seconds
        self.reuse_grace = settings.refresh_reuse_grace_seconds

    def successor(self, refresh_token: str) -> str:
        return successor_refresh_token(self._keys.refresh_secret, refresh_token)

    def access_token(self, *, user_id: uuid.UUID, roles: list[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "roles": roles,
            "iat": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._keys.kid, "typ": "JWT"}
        return str(jwt.encode(claims, self._keys.private_key, algorithm=ALGORITHM, headers=headers))
