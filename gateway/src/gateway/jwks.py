"""GET /.well-known/jwks.json: the public keys tokens are signed with (current, previous)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.deps import RuntimeDep

router = APIRouter(tags=["auth"])


class JwkSetResponse(JSONResponse):
    media_type = "application/jwk-set+json"  # RFC 7517 section 8.5.1


JWK_SET_SCHEMA = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
}


@router.get(
    "/.well-known/jwks.json",
    response_class=JwkSetResponse,
    responses={
        200: {
            "description": "The JWK Set of the keys tokens are signed with.",
            "content": {JwkSetResponse.media_type: {"schema": JWK_SET_SCHEMA}},
        }
    },
)
async def jwks(runtime: RuntimeDep) -> JwkSetResponse:
    return JwkSetResponse(
        runtime.keys.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )
