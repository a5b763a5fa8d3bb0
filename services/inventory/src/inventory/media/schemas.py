"""Media responses."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

MEDIA_PREFIX = "/api/v1/media"


def media_url(media_id: uuid.UUID | str) -> str:
    return f"{MEDIA_PREFIX}/{media_id}"


class ImageOut(BaseModel):
    """An image as a product lists it."""

    id: uuid.UUID
    url: str
    content_type: str


class MediaOut(ImageOut):
    """An upload as stored: ``sha256`` is also the strong ETag it is served with."""

    size: int
    sha256: str
