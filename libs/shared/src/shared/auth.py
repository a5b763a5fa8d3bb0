"""Access tokens as every process sees them: verification, the principal, role checks.

The gateway signs RS256 tokens; the gateway and every service verify them here, with the
same rules. python-jose only checks the signature: every claim and header rule is checked
below, because jose on its own accepts a missing ``aud``, a future ``iat`` and ``crit``.
Nothing a token points to (``jku``, ``x5u``, ``jwk``) is ever fetched or used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jwk, jws

from shared.errors import DomainError
from shared.settings import DEV_KEY_FILES, BaseServiceSettings

ALGORITHM = "RS256"
DEV_PRIVATE_KEY_FILE, DEV_PUBLIC_KEY_FILE = DEV_KEY_FILES
REALM = "commerce"

_PEM_PUBLIC_KEY = re.compile(
    r"-----BEGIN (?:RSA )?PUBLIC KEY-----[A-Za-z0-9+/=\s]+?-----END (?:RSA )?PUBLIC KEY-----"
)
_ALLOWED_TYPES = frozenset({"jwt", "at+jwt"})

logger = logging.getLogger(__name__)


class InvalidToken(Exception):
    """Why a token was refused; logged, never told to the client."""


class NotAuthenticated(DomainError):
    status = 401
    title = "Unauthorized"
    type = "/problems/not-authenticated"

    def __init__(self, detail: str = "A valid bearer token is required.", *, error: bool = False):
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    type = "/problems/forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user id (the token's ``sub``) and roles, from a verified token."""

    user_id: uuid.UUID
    roles: frozenset[str]
    token_id: str | None
    expires_at: float

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# --- keys ----------------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("an RS256 verification key must be an RSA public key")
    if key.key_size < 2048:
        raise ValueError("an RSA key must have at least 2048 bits")
    return key


def public_jwk(public_pem: str) -> dict[str, str]:
    """The JWK (RFC 7517) of a PEM public key, with its ``kid``, as JWKS publishes it."""
    numbers = _rsa_public_key(public_pem).public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    return {**members, "kid": key_id(public_pem), "use": "sig", "alg": ALGORITHM}


def key_id(public_pem: str) -> str:
    """The RFC 7638 thumbprint of the key: signer and verifiers derive the same ``kid``."""
    numbers = _rsa_public_key(public_pem).public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    digest = hashlib.sha256(orjson.dumps(members, option=orjson.OPT_SORT_KEYS)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_pem_of(private_pem: str) -> str:
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def split_public_pems(text: str) -> list[str]:
    """Every PEM public key in ``text`` (a setting may hold the current and a previous key)."""
    return _PEM_PUBLIC_KEY.findall(text)


def ensure_development_keys(directory: Path) -> tuple[str, str]:
    """The development key pair in ``directory`` (private PEM, public PEM), created once.

    The gateway and the services start together under ``make dev``; whichever comes first
    creates the key and the others read it. Creation is atomic (a hard link of a complete
    file), so no process ever reads half a key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / DEV_PRIVATE_KEY_FILE
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        draft = directory / f".{DEV_PRIVATE_KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(draft, private_path)
        except FileExistsError:
            pass  # another process won the race; its key is the one
        finally:
            draft.unlink()
    private_pem = private_path.read_text()
    public_pem = public_pem_of(private_pem)
    public_path = directory / DEV_PUBLIC_KEY_FILE
    if not public_path.exists() or public_path.read_text() != public_pem:
        draft = directory / f".{DEV_PUBLIC_KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
        draft.write_text(public_pem)
        draft.replace(public_path)
    return private_pem, public_pem


def public_keys_from_settings(settings: BaseServiceSettings) -> list[str]:
    """The PEM public keys tokens may be signed with, from settings or the development key."""
    pems = split_public_pems(settings.jwt_public_keys)
    if settings.jwt_public_key_file:
        pems += split_public_pems(Path(settings.jwt_public_key_file).read_text())
    if pems:
        return pems
    if settings.environment not in ("development", "test"):
        raise RuntimeError(
            "no JWT public key configured: set JWT_PUBLIC_KEYS or JWT_PUBLIC_KEY_FILE "
            f"(the development key is refused in {settings.environment})"
        )
    return [ensure_development_keys(Path(settings.jwt_dev_key_dir))[1]]


# --- verification --------------------------------------------------------------------------


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


# --- FastAPI dependencies ------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/token.")


def token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier: ``app.state.token_verifier``, built from its settings on first use."""
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier.from_settings(state.settings)
        state.token_verifier = verifier
    return verifier


def authenticate(verifier: TokenVerifier, authorization: str | None) -> Principal | None:
    """The principal of an ``Authorization`` header value; None without one; 401 if invalid."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("The Authorization header must be 'Bearer <token>'.", error=True)
    try:
        return verifier.verify(token.strip())
    except InvalidToken as exc:
        logger.info("token refused: %s", exc)
        raise NotAuthenticated("The bearer token is invalid or expired.", error=True) from None


# Each dependency below reads the token itself, beside the bearer scheme, rather than
# through the others: every level of FastAPI's dependency tree costs its solver CPU on every
# request, so a role check stays two levels deep (bench/CHANGES.md).
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _caller(request: Request) -> Principal | None:
    return authenticate(token_verifier(request), request.headers.get("authorization"))


async def optional_principal(request: Request, credentials: BearerCredentials) -> Principal | None:
    """The caller, or None when anonymous; an invalid token is still a 401.

    ``credentials`` is declared so that the OpenAPI document shows the bearer scheme; the
    header is parsed here, with the platform's own rules.
    """
    return _caller(request)


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """The caller; 401 with ``WWW-Authenticate: Bearer`` when there is no valid token."""
    principal = _caller(request)
    if principal is None:
        raise NotAuthenticated()
    return principal


def require_role(*roles: str) -> Callable[..., Any]:
    """A dependency answering the caller when they hold one of ``roles``, else 403."""
    wanted = frozenset(roles)

    async def dependency(request: Request, credentials: BearerCredentials) -> Principal:
        principal = await current_principal(request, credentials)
        if not wanted & principal.roles:
            raise Forbidden(f"This needs the role {' or '.join(sorted(wanted))}.")
        return principal

    return dependency


OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
CustomerDep = Annotated[Principal, Depends(require_role("customer"))]
