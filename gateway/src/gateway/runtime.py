"""What the gateway holds for its lifetime: keys, verifier, issuer, limiter, upstream client.

Built by ``create_app``; the parts bound to the event loop (Redis, the upstream pool) are
started and closed by the lifespan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import GatewaySettings
from gateway.identity.passwords import PasswordHasher
from gateway.identity.tokens import TokenIssuer
from gateway.keys import SigningKeys, load_signing_keys
from gateway.proxy.routes import RouteTable
from gateway.proxy.upstream import UpstreamClient
from gateway.ratelimit import RateLimiter
from shared.auth import TokenVerifier


@dataclass
class GatewayRuntime:
    settings: GatewaySettings
    keys: SigningKeys
    verifier: TokenVerifier
    issuer: TokenIssuer
    hasher: PasswordHasher
    routes: RouteTable
    upstreams: UpstreamClient
    limiter: RateLimiter | None = field(default=None)

    @classmethod
    def build(cls, settings: GatewaySettings) -> GatewayRuntime:
        keys = load_signing_keys(settings)
        return cls(
            settings=settings,
            keys=keys,
            verifier=keys.verifier(settings),
            issuer=TokenIssuer(keys, settings),
            hasher=PasswordHasher(settings.password_hash_concurrency),
            routes=RouteTable(settings.routes),
            upstreams=UpstreamClient(settings),
        )

    @property
    def rate_limiter(self) -> RateLimiter:
        if self.limiter is None:
            raise RuntimeError("the rate limiter is not started (lifespan not run)")
        return self.limiter
