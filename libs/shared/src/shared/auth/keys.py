"""Token keys: RSA public keys as PEM and JWK, their ``kid``, and the development key pair.

The gateway signs RS256 tokens with its private key; every process verifies them with the
public keys of its settings (the current one and, during a rotation, the previous one). The
``kid`` is the key's RFC 7638 thumbprint, so signer and verifiers derive the same one.
Outside development and tests a missing key is an error, never the development key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.settings import DEV_KEY_FILES, BaseServiceSettings

ALGORITHM = "RS256"
DEV_PRIVATE_KEY_FILE, DEV_PUBLIC_KEY_FILE = DEV_KEY_FILES

_PEM_PUBLIC_KEY = re.compile(
    r"-----BEGIN (?:RSA )?PUBLIC KEY-----[A-Za-z0-9+/=\s]+?-----END (?:RSA )?PUBLIC KEY-----"
)


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
