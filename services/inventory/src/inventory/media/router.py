"""Media HTTP routes: admins upload and delete a product's images; anyone downloads them."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from starlette.requests import ClientDisconnect

from inventory.deps import SessionDep, SettingsDep
from inventory.media import service
from inventory.media.download import FileBytes, Unsatisfiable, parse_range
from inventory.media.schemas import MEDIA_PREFIX, MediaOut
from inventory.media.storage import MediaStorage
from inventory.products.models import SKU_PATTERN
from shared.auth import AdminDep
from shared.errors import problem_response
from shared.openapi import problem_responses

logger = logging.getLogger(__name__)

# The upload route's path, for the body limit of its own (``inventory.main``).
UPLOAD_PATH = r"/api/v1/products/[^/]+/media"
IMMUTABLE = "public, max-age=31536000, immutable"

products_router = APIRouter(
    prefix="/api/v1/products", tags=["media"], responses=problem_responses(401, 403, 503)
)
media_router = APIRouter(prefix=MEDIA_PREFIX, tags=["media"], responses=problem_responses(503))

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]


async def _storage(request: Request) -> MediaStorage:
    storage: MediaStorage = request.app.state.media_storage
    return storage


StorageDep = Annotated[MediaStorage, Depends(_storage)]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image's bytes; they must be of the type Content-Type names.",
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in ("image/jpeg", "image/png", "image/webp")
        },
    }
}


@products_router.post(
    "/{sku}/media",
    status_code=201,
    response_model=MediaOut,
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(
        (400, "An empty body, or a client gone before the whole body arrived."),
        404,
        (413, "Over the upload limit (10 MiB by default)."),
        (415, "Not image/jpeg, image/png or image/webp, or bytes of another type."),
        (507, "The media storage is full."),
    ),
)
async def upload_media(
    sku: SkuPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    admin: AdminDep,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """Store an image of the product, streamed to shared storage; its bytes decide its type."""
    declared = service.media_type(content_type)
    await service.check_product(session=session, sku=sku)
    try:
        media = await service.upload(
            session=session,
            storage=storage,
            sku=sku,
            content_type=declared,
            body=request.stream(),
            limit=settings.media_max_bytes,
        )
    except ClientDisconnect:
        logger.info("upload for %s abandoned by the client; nothing stored", sku)
        return problem_response(
            400, "The body ended before its declared length (the client went away)."
        )
    logger.info("media %s stored for %s by %s", media.id, sku, admin.user_id)
    return Response(
        media.model_dump_json().encode(),
        status_code=201,
        media_type="application/json",
        headers={"Location": media.url},
    )


@products_router.delete(
    "/{sku}/media/{media_id}",
    status_code=204,
    responses=problem_responses((404, "No such media for this product.")),
)
async def delete_media(
    sku: SkuPath,
    media_id: uuid.UUID,
    session: SessionDep,
    storage: StorageDep,
    admin: AdminDep,
) -> Response:
    await service.delete_media(session=session, storage=storage, sku=sku, media_id=media_id)
    logger.info("media %s of %s deleted by %s", media_id, sku, admin.user_id)
    return Response(status_code=204)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


@media_router.get(
    "/{media_id}",
    response_class=Response,
    responses={
        200: {"description": "The bytes.", "content": {"image/*": {}}},
        206: {"description": "The byte range asked for."},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(
            (404, "No such media."), (416, "No byte of the file is in the range asked for.")
        ),
    },
)
async def download_media(
    media_id: uuid.UUID,
    session: SessionDep,
    storage: StorageDep,
    if_none_match: Annotated[str | None, Header()] = None,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_range: Annotated[str | None, Header()] = None,
) -> Response:
    """The image, immutable: its ETag is its sha256, so it can be cached forever."""
    media = await service.get_media(session=session, media_id=media_id)
    etag = f'"{media.sha256}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Type"] = media.content_type
    path = storage.path_of(media.sha256)
    # A Range is honoured only for this very representation (If-Range, strong comparison).
    if range_ is not None and (if_range is None or if_range.strip() == etag):
        try:
            wanted = parse_range(range_, media.size)
        except Unsatisfiable:
            return problem_response(
                416,
                f"The range {range_!r} is outside the {media.size} bytes of this file.",
                headers={"Content-Range": f"bytes */{media.size}"},
            )
        if wanted is not None:
            headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{media.size}"
            return FileBytes(
                path, status_code=206, headers=headers, start=wanted.start, length=wanted.length
            )
    return FileBytes(path, status_code=200, headers=headers, start=0, length=media.size)
