"""Access tokens as every process sees them: keys, verification, the principal, role checks.

The gateway signs RS256 tokens; the gateway and every service verify them here, with the
same rules: ``keys`` (PEM, JWK, ``kid``, the development key pair), ``verifier``
(``TokenVerifier``), ``principal`` (``Principal``), ``errors`` (401 and 403) and
``dependencies`` (the FastAPI dependencies routes declare).
"""

from shared.auth.dependencies import (
    AdminDep,
    CustomerDep,
    OptionalPrincipalDep,
    PrincipalDep,
    authenticate,
    current_principal,
    optional_principal,
    require_role,
    token_verifier,
)
from shared.auth.errors import REALM, Forbidden, InvalidToken, NotAuthenticated
from shared.auth.keys import (
    ALGORITHM,
    DEV_PRIVATE_KEY_FILE,
    DEV_PUBLIC_KEY_FILE,
    ensure_development_keys,
    key_id,
    public_jwk,
    public_keys_from_settings,
    public_pem_of,
    split_public_pems,
)
from shared.auth.principal import Principal
from shared.auth.verifier import TokenVerifier

__all__ = [
    "ALGORITHM",
    "DEV_PRIVATE_KEY_FILE",
    "DEV_PUBLIC_KEY_FILE",
    "REALM",
    "AdminDep",
    "CustomerDep",
    "Forbidden",
    "InvalidToken",
    "NotAuthenticated",
    "OptionalPrincipalDep",
    "Principal",
    "PrincipalDep",
    "TokenVerifier",
    "authenticate",
    "current_principal",
    "ensure_development_keys",
    "key_id",
    "optional_principal",
    "public_jwk",
    "public_keys_from_settings",
    "public_pem_of",
    "require_role",
    "split_public_pems",
    "token_verifier",
]
