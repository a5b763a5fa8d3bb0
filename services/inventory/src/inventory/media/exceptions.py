"""What media routes refuse, as problem+json."""

from shared.errors import DomainError

ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp")


class MediaNotFound(DomainError):
    status = 404
    title = "Media not found"
    type = "/problems/media-not-found"

    def __init__(self) -> None:
        super().__init__("No such media (for this product).")


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"
    type = "/problems/unsupported-media-type"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail} Accepted: {', '.join(ACCEPTED_TYPES)}.")


class MediaTooLarge(DomainError):
    status = 413
    title = "Content Too Large"
    type = "/problems/media-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upload exceeds the limit of {limit} bytes.")


class IncompleteUpload(DomainError):
    status = 400
    title = "Incomplete upload"
    type = "/problems/incomplete-upload"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class StorageFull(DomainError):
    status = 507
    title = "Insufficient Storage"
    type = "/problems/storage-full"

    def __init__(self) -> None:
        super().__init__("The media storage is full; nothing was stored. Retry later.")
