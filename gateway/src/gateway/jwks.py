"""GET /.well-known/jwks.json: the public keys tokens are signed with (current, previous)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.deps import RuntimeDep

router = APIRouter(tags=["auth"])


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(
        runtime.keys.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
        media_type="application/jwk-set+json",
    )
