"""Access token verification: every claim and header rule, the same in every process.

python-jose only checks the signature: every claim and header rule is checked here, because
jose on its own accepts a missing ``aud``, a future ``iat`` and ``crit``. Nothing a token
points to (``jku``, ``x5u``, ``jwk``) is ever fetched or used.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from jose import jwk, jws

from shared.auth.errors import InvalidToken
from shared.auth.keys import ALGORITHM, key_id, public_keys_from_settings
from shared.auth.principal import Principal
from shared.settings import BaseServiceSettings

_ALLOWED_TYPES = frozenset({"jwt", "at+jwt"})


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class TokenVerifier:
    """Verifies access tokens against a fixed set of RSA public keys, keyed by ``kid``.

    Keys are parsed once: a parsed key verifies faster than a PEM parsed per call
    (``python -m bench.tokens``). Verified tokens are remembered, up to ``cache_size``, until
    they expire, so a client's burst of requests costs one signature check.
    """

    def __init__(
        self,
        public_pems: Sequence[str],
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 10,
        max_token_bytes: int = 8192,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not public_pems:
            raise ValueError("a verifier needs at least one public key")
        self._keys = {key_id(pem): jwk.construct(pem, ALGORITHM) for pem in public_pems}
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.max_token_bytes = max_token_bytes
        self._cache_size = cache_size
        self._cache: dict[str, Principal] = {}
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> TokenVerifier:
        return cls(
            public_keys_from_settings(settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_token_bytes=settings.jwt_max_token_bytes,
            cache_size=settings.jwt_verified_cache_size,
        )

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``InvalidToken`` for anything else."""
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self.leeway > now:
                return cached
            del self._cache[token]
        principal = self._verify(token, now)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                # Evict the oldest entry: dicts keep insertion order.
                del self._cache[next(iter(self._cache))]
            self._cache[token] = principal
        return principal

    def _verify(self, token: str, now: float) -> Principal:
        if len(token) > self.max_token_bytes:
            raise InvalidToken("token too large")
        segments = token.split(".")
        if len(segments) != 3 or not all(segments):
            raise InvalidToken("not a three-segment compact JWS")
        try:
            header = _b64url_json(segments[0])
        except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
            raise InvalidToken("header is not base64url JSON") from exc
        key = self._key_for(header)
        try:
            payload = jws.verify(token, key, algorithms=[ALGORITHM])
            claims = orjson.loads(payload)
        except Exception as exc:  # jose raises several types; all mean "not valid"
            raise InvalidToken(f"signature or payload refused: {exc}") from exc
        if not isinstance(claims, dict):
            raise InvalidToken("payload is not a JSON object")
        return self._principal(claims, now)

    def _key_for(self, header: Any) -> Any:
        if not isinstance(header, dict):
            raise InvalidToken("header is not a JSON object")
        # Exactly one algorithm, compared as is: "none", "None", "HS256"... are all refused.
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} refused")
        if "crit" in header:
            raise InvalidToken("critical header extensions are not supported")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ALLOWED_TYPES):
            raise InvalidToken(f"token type {typ!r} refused")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise InvalidToken("unknown key id")
        return self._keys[kid]

    def _principal(self, claims: dict[str, Any], now: float) -> Principal:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong or missing issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise InvalidToken("wrong or missing audience")
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is None or exp + self.leeway <= now:
            raise InvalidToken("expired or no expiry")
        if iat is None or iat > now + self.leeway:
            raise InvalidToken("issued in the future or no issue time")
        if "nbf" in claims:
            nbf = _number(claims["nbf"])
            if nbf is None or nbf > now + self.leeway:
                raise InvalidToken("not valid yet")
        subject = claims.get("sub")
        try:
            user_id = uuid.UUID(subject) if isinstance(subject, str) else None
        except ValueError:
            user_id = None
        if user_id is None:
            raise InvalidToken("subject missing or not a user id")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise InvalidToken("roles is not a list of strings")
        jti = claims.get("jti")
        return Principal(
            user_id=user_id,
            roles=frozenset(roles),
            token_id=jti if isinstance(jti, str) else None,
            expires_at=exp,
        )
