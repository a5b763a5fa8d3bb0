"""What a well-behaved storefront client does on a 503: wait and send the request again,
when sending it again is safe (a read, a login, or a write carrying its Idempotency-Key).

Only "unavailable" answers are retried (503, and 502/504 from the gateway while a service
is away); a 500 is a bug and reaches the test as it is.
"""

from __future__ import annotations

import asyncio

import httpx

RETRIED_STATUSES = frozenset({502, 503, 504})
SAFE_POSTS = frozenset({"/api/v1/auth/token"})
ATTEMPTS = 30
PAUSE_SECONDS = 0.5


def _safe_to_repeat(request: httpx.Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        or "idempotency-key" in request.headers
        or request.url.path in SAFE_POSTS
    )


class RetryingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _safe_to_repeat(request):
            return await self.inner.handle_async_request(request)
        for _ in range(ATTEMPTS - 1):
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError:
                await asyncio.sleep(PAUSE_SECONDS)
                continue
            if response.status_code not in RETRIED_STATUSES:
                return response
            await response.aclose()
            await asyncio.sleep(PAUSE_SECONDS)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
