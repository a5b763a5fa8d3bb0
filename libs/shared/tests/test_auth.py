"""Token verification: the JWT attack list, each refused with 401, never a 500."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jose import jwt

from shared.auth import (
    AdminDep,
    InvalidToken,
    OptionalPrincipalDep,
    PrincipalDep,
    TokenVerifier,
    ensure_development_keys,
    key_id,
    public_jwk,
    public_keys_from_settings,
    split_public_pems,
)
from shared.errors import install_error_handlers
from shared.settings import BaseServiceSettings

ISSUER = "test-issuer"
AUDIENCE = "test-audience"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return ensure_development_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def verifier(keys: tuple[str, str]) -> TokenVerifier:
    return TokenVerifier([keys[1]], issuer=ISSUER, audience=AUDIENCE, cache_size=0)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "roles": ["customer"],
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


Sign = Callable[..., str]


@pytest.fixture(scope="module")
def sign(keys: tuple[str, str]) -> Sign:
    private_pem, public_pem = keys

    def sign(headers: dict[str, Any] | None = None, **changes: Any) -> str:
        all_headers = {"kid": key_id(public_pem), **(headers or {})}
        return str(jwt.encode(_claims(**changes), private_pem, "RS256", headers=all_headers))

    return sign


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}.{signature}"


def test_a_well_formed_token_gives_its_principal(verifier: TokenVerifier, sign: Sign) -> None:
    user_id = uuid.uuid4()
    principal = verifier.verify(sign(sub=str(user_id), roles=["admin", "customer"]))
    assert principal.user_id == user_id
    assert principal.roles == {"admin", "customer"}
    assert principal.is_admin


def test_an_audience_list_containing_ours_is_accepted(verifier: TokenVerifier, sign: Sign) -> None:
    verifier.verify(sign(aud=["other", AUDIENCE]))


def test_a_clock_skew_within_the_leeway_is_accepted(verifier: TokenVerifier, sign: Sign) -> None:
    now = int(time.time())
    verifier.verify(sign(iat=now + 5, nbf=now + 5))


def _refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused(
    verifier: TokenVerifier, keys: tuple[str, str], alg: str
) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": key_id(keys[1])}
    _refused(verifier, _unsigned(header, _claims()))
    _refused(verifier, _unsigned(header, _claims(), signature="x"))


def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, keys: tuple[str, str]
) -> None:
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": key_id(keys[1])}
    signing_input = _unsigned(header, _claims())[:-1]
    mac = hmac.new(keys[1].encode(), signing_input.encode(), hashlib.sha256).digest()
    _refused(verifier, signing_input + "." + _b64(mac))


def test_a_foreign_key_with_a_valid_kid_is_refused(
    verifier: TokenVerifier, keys: tuple[str, str]
) -> None:
    token = jwt.encode(_claims(), _new_private_pem(), "RS256", headers={"kid": key_id(keys[1])})
    _refused(verifier, token)


def test_a_tampered_payload_is_refused(verifier: TokenVerifier, sign: Sign) -> None:
    header, _, signature = sign().split(".")
    forged = _b64(orjson.dumps(_claims(roles=["admin"])))
    _refused(verifier, f"{header}.{forged}.{signature}")


def test_an_expired_token_is_refused(verifier: TokenVerifier, sign: Sign) -> None:
    now = int(time.time())
    _refused(verifier, sign(iat=now - 600, exp=now - 60))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_future_nbf_or_iat_is_refused(verifier: TokenVerifier, sign: Sign, claim: str) -> None:
    _refused(verifier, sign(**{claim: int(time.time()) + 120}))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"iss": None},
        {"aud": "another-api"},
        {"aud": ["another-api"]},
        {"aud": None},
        {"sub": None},
        {"sub": "not-a-uuid"},
        {"sub": 42},
        {"exp": None},
        {"exp": "tomorrow"},
        {"exp": True},
        {"iat": None},
        {"roles": "admin"},
        {"roles": [1]},
    ],
    ids=repr,
)
def test_wrong_or_missing_claims_are_refused(
    verifier: TokenVerifier, sign: Sign, changes: dict[str, Any]
) -> None:
    _refused(verifier, sign(**changes))


def test_an_unknown_kid_is_refused(verifier: TokenVerifier, sign: Sign) -> None:
    _refused(verifier, sign(headers={"kid": "unknown"}))


def test_a_missing_kid_is_refused(verifier: TokenVerifier, keys: tuple[str, str]) -> None:
    _refused(verifier, str(jwt.encode(_claims(), keys[0], "RS256")))


def test_a_crit_header_is_refused(verifier: TokenVerifier, sign: Sign) -> None:
    _refused(verifier, sign(headers={"crit": ["exp"], "exp": 1}))


def test_a_foreign_jku_or_jwk_header_is_not_used(verifier: TokenVerifier) -> None:
    # Signed with the attacker's key, which the header points to or embeds.
    foreign = _new_private_pem()
    headers = {"kid": "attacker", "jku": "http://127.0.0.1:1/jwks.json", "x5u": "http://x"}
    _refused(verifier, str(jwt.encode(_claims(), foreign, "RS256", headers=headers)))


def test_a_wrong_type_header_is_refused(verifier: TokenVerifier, sign: Sign) -> None:
    _refused(verifier, sign(headers={"typ": "refresh+jwt"}))


@pytest.mark.parametrize("segments", [2, 4])
def test_two_and_four_segment_tokens_are_refused(
    verifier: TokenVerifier, sign: Sign, segments: int
) -> None:
    parts = sign().split(".")
    token = ".".join(parts[:2]) if segments == 2 else ".".join([*parts, parts[2]])
    _refused(verifier, token)


@pytest.mark.parametrize("garbage", ["", "...", "a.b.c", "Zm9v.YmFy.YmF6", "é.é.é"])
def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    _refused(verifier, garbage)


def test_an_oversized_token_is_refused_unread(verifier: TokenVerifier, sign: Sign) -> None:
    _refused(verifier, sign(padding="x" * verifier.max_token_bytes))


def test_a_verified_token_is_cached_until_it_expires(keys: tuple[str, str], sign: Sign) -> None:
    clock = [time.time()]
    verifier = TokenVerifier(
        [keys[1]], issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0, clock=lambda: clock[0]
    )
    token = sign(exp=int(clock[0]) + 30)
    assert verifier.verify(token) is verifier.verify(token)
    clock[0] += 31
    _refused(verifier, token)


def test_a_previous_key_still_verifies_during_rotation(sign: Sign, keys: tuple[str, str]) -> None:
    new_private = _new_private_pem()
    new_public = split_public_pems(
        serialization.load_pem_private_key(new_private.encode(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )[0]
    verifier = TokenVerifier([new_public, keys[1]], issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(sign())
    headers = {"kid": key_id(new_public)}
    verifier.verify(str(jwt.encode(_claims(), new_private, "RS256", headers=headers)))


def test_development_keys_are_created_once(tmp_path: Path) -> None:
    first = ensure_development_keys(tmp_path)
    assert ensure_development_keys(tmp_path) == first
    assert (tmp_path / "dev-signing-key.pem").stat().st_mode & 0o077 == 0


def test_public_jwk_carries_the_kid(keys: tuple[str, str]) -> None:
    jwk = public_jwk(keys[1])
    assert jwk["kid"] == key_id(keys[1])
    assert {jwk["kty"], jwk["alg"], jwk["use"]} == {"RSA", "RS256", "sig"}


def test_settings_outside_development_need_a_configured_key(tmp_path: Path) -> None:
    settings = BaseServiceSettings(environment="development", jwt_dev_key_dir=str(tmp_path))
    assert public_keys_from_settings(settings) == [ensure_development_keys(tmp_path)[1]]
    production = BaseServiceSettings.model_construct(
        environment="production", jwt_public_keys="", jwt_public_key_file=""
    )
    with pytest.raises(RuntimeError, match="no JWT public key"):
        public_keys_from_settings(production)


# --- dependencies over HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, str]:
        return {"user_id": str(principal.user_id)}

    @app.get("/admin")
    async def admin(principal: AdminDep) -> dict[str, str]:
        return {"user_id": str(principal.user_id)}

    @app.get("/maybe")
    async def maybe(principal: OptionalPrincipalDep) -> dict[str, str | None]:
        return {"user_id": str(principal.user_id) if principal else None}

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_valid_bearer_token_reaches_the_route(
    client: httpx.AsyncClient, sign: Sign
) -> None:
    user_id = str(uuid.uuid4())
    response = await client.get("/me", headers={"Authorization": f"Bearer {sign(sub=user_id)}"})
    assert response.status_code == 200
    assert response.json() == {"user_id": user_id}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.token", "Bearer a.b"],
)
async def test_no_or_bad_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.json()) >= {"type", "title", "status", "detail"}


async def test_an_expired_token_is_401_invalid_token(client: httpx.AsyncClient, sign: Sign) -> None:
    now = int(time.time())
    token = sign(iat=now - 600, exp=now - 60)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_customer_is_403_on_an_admin_route(client: httpx.AsyncClient, sign: Sign) -> None:
    token = sign(roles=["customer"])
    response = await client.get("/admin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    admin = await client.get("/admin", headers={"Authorization": f"Bearer {sign(roles=['admin'])}"})
    assert admin.status_code == 200


async def test_an_optional_principal_allows_anonymous_but_not_invalid(
    client: httpx.AsyncClient, sign: Sign
) -> None:
    assert (await client.get("/maybe")).json() == {"user_id": None}
    bad = await client.get("/maybe", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
