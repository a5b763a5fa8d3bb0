"""Token verification benchmark: what parsed keys and the verified-token cache buy.

Prints figures, never pass/fail. One process, one RS256 token of the gateway's shape,
verified over and over three ways:
- python-jose's ``jwt.decode`` given the PEM, as a verifier that keeps no parsed key does
  (the key is parsed on every call);
- the platform's ``TokenVerifier`` with its cache turned off (``cache_size=0``): the parsed
  key, every claim checked, the signature verified on every call;
- the ``TokenVerifier`` as every service runs it: a token verified once is remembered
  until it expires.

``python -m bench.tokens [--calls 2000]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from jose import jwt

from shared.auth import TokenVerifier, ensure_development_keys, key_id

ISSUER, AUDIENCE = "commerce-gateway", "commerce-api"


def sample_token(private_pem: str, public_pem: str) -> str:
    """An access token of the gateway's shape (a customer's, valid for an hour)."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "roles": ["customer"],
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    return str(jwt.encode(claims, private_pem, "RS256", headers={"kid": key_id(public_pem)}))


def cpu_per_call(verify: Callable[[], object], calls: int) -> float:
    """Microseconds of this process's CPU per call, after a short warm-up."""
    for _ in range(min(50, calls)):
        verify()
    started = time.process_time()
    for _ in range(calls):
        verify()
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    options = parser.parse_args()

    private_pem, public_pem = ensure_development_keys(
        Path(tempfile.mkdtemp(prefix="bench-tokens-"))
    )
    token = sample_token(private_pem, public_pem)

    def jose_with_pem() -> object:
        return jwt.decode(token, public_pem, algorithms=["RS256"], audience=AUDIENCE)

    uncached = TokenVerifier([public_pem], issuer=ISSUER, audience=AUDIENCE, cache_size=0)
    cached = TokenVerifier([public_pem], issuer=ISSUER, audience=AUDIENCE)
    rows = {
        "python-jose, PEM parsed per call": jose_with_pem,
        "TokenVerifier, parsed key, no cache": lambda: uncached.verify(token),
        "TokenVerifier, parsed key, cache (as run)": lambda: cached.verify(token),
    }
    print(f"RS256 verification of one gateway token, {options.calls} calls each")
    for name, verify in rows.items():
        print(f"  {name:44} {cpu_per_call(verify, options.calls):8.1f} us of CPU per call")


if __name__ == "__main__":
    main()
