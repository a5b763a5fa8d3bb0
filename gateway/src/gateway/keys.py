"""The gateway's signing key, the keys it publishes, and the verifier built from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jose import jwk

from gateway.config import GatewaySettings
from shared.auth import (
    ALGORITHM,
    TokenVerifier,
    ensure_development_keys,
    key_id,
    public_jwk,
    public_pem_of,
    split_public_pems,
)


class SigningKeyMissing(RuntimeError):
    """No signing key is configured outside development."""


@dataclass(frozen=True)
class SigningKeys:
    """The current signing key, and every public key tokens may still carry.

    During a rotation the previous public key stays published (and accepted) until the
    tokens it signed have expired; configure it in ``COMMERCE_JWT_PUBLIC_KEYS``.
    """

    kid: str
    private_key: Any  # a parsed jose key, so that no signature parses the PEM again
    public_pems: tuple[str, ...]
    # Keys the derivation of a spent refresh token's successor (identity.tokens): derived from
    # the signing key, so every replica has it and no other secret needs configuring.
    refresh_secret: bytes

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(pem) for pem in self.public_pems]}

    def verifier(self, settings: GatewaySettings) -> TokenVerifier:
        return TokenVerifier(
            self.public_pems,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_token_bytes=settings.jwt_max_token_bytes,
            cache_size=settings.jwt_verified_cache_size,
        )


def _private_pem(settings: GatewaySettings) -> str:
    if pem := settings.jwt_private_key.get_secret_value():
        return pem
    if settings.jwt_private_key_file:
        return Path(settings.jwt_private_key_file).read_text()
    if settings.environment not in ("development", "test"):
        # Settings already refuse an empty key outside development; this is the last guard.
        raise SigningKeyMissing("set GATEWAY_JWT_PRIVATE_KEY or GATEWAY_JWT_PRIVATE_KEY_FILE")
    return ensure_development_keys(Path(settings.jwt_dev_key_dir))[0]


def load_signing_keys(settings: GatewaySettings) -> SigningKeys:
    private_pem = _private_pem(settings)
    current = public_pem_of(private_pem)
    kid = key_id(current)
    extra = split_public_pems(settings.jwt_public_keys)
    if settings.jwt_public_key_file and Path(settings.jwt_public_key_file).exists():
        extra += split_public_pems(Path(settings.jwt_public_key_file).read_text())
    previous = {key_id(pem): pem for pem in extra if key_id(pem) != kid}
    return SigningKeys(
        kid=kid,
        private_key=jwk.construct(private_pem, ALGORITHM),
        public_pems=(current, *previous.values()),
        refresh_secret=hashlib.sha256(
            b"commerce refresh rotation\0" + private_pem.encode()
        ).digest(),
    )
