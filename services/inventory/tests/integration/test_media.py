"""Product media against real inventory processes sharing one MEDIA_ROOT, and Postgres.

Uploads go over real sockets (uvicorn), so that truncated bodies, clients that go away and
refusals that come before the whole body can be sent as a client would send them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.media.models import ProductMedia
from inventory.media.storage import MediaStorage
from inventory.media.sweep import sweep_media_once
from shared.testing.ports import free_port

LIMIT = 1_048_576  # the test processes' upload limit (INVENTORY_MEDIA_MAX_BYTES)
# Filled once per module by ``_tokens`` (the tokens come from the suite's fixtures).
ADMIN: dict[str, str] = {}
CUSTOMER: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _tokens(token: Callable[..., str]) -> None:
    ADMIN["Authorization"] = f"Bearer {token('admin')}"
    CUSTOMER["Authorization"] = f"Bearer {token('customer')}"


def new_sku() -> str:
    return f"T-{uuid.uuid4().hex[:12].upper()}"


def png(size: int = 4096, seed: int = 0) -> bytes:
    """A valid PNG signature and header followed by ``size`` bytes in all: enough for
    the type check, which reads the magic number."""
    signature = b"\x89PNG\r\n\x1a\n"
    ihdr = b"IHDR" + (1).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    chunk = len(ihdr[4:]).to_bytes(4, "big") + ihdr + zlib.crc32(ihdr).to_bytes(4, "big")
    head = signature + chunk
    filler = hashlib.sha256(f"{seed}".encode()).digest() * (size // 32 + 1)
    return (head + filler)[:size]


def jpeg(size: int = 4096) -> bytes:
    return (b"\xff\xd8\xff\xe0" + os.urandom(size))[:size]


class Replica:
    """``python -m inventory`` on a port of its own."""

    def __init__(self, settings: InventorySettings, root: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "INVENTORY_PORT": str(self.port),
            "INVENTORY_JWT_PUBLIC_KEYS": settings.jwt_public_keys,
            "INVENTORY_MEDIA_ROOT": str(root),
            "INVENTORY_MEDIA_MAX_BYTES": str(LIMIT),
            "COMMERCE_LOG_FORMAT": "json",
        }
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "inventory"],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"inventory never started:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def replicas(
    settings: InventorySettings, media_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Replica, Replica]]:
    logs = tmp_path_factory.mktemp("replica-logs")
    first = Replica(settings, media_root, logs / "a.log")
    try:
        second = Replica(settings, media_root, logs / "b.log")
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def uploader(replicas: tuple[Replica, Replica]) -> Replica:
    return replicas[0]


@pytest.fixture
def server(replicas: tuple[Replica, Replica]) -> Replica:
    return replicas[1]


@pytest.fixture
def product(uploader: Replica) -> str:
    sku = new_sku()
    body = {"sku": sku, "name": "Lamp", "price": {"amount": 1999, "currency": "USD"}}
    response = httpx.post(f"{uploader.url}/api/v1/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return sku


def upload(
    replica: Replica, sku: str, body: bytes, content_type: str = "image/png", **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{replica.url}/api/v1/products/{sku}/media",
        content=body,
        headers={**ADMIN, "Content-Type": content_type, **headers},
        timeout=30,
    )


def leftovers(root: Path) -> list[Path]:
    tmp = root / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


async def media_rows(sessionmaker: async_sessionmaker[AsyncSession], sku: str) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(ProductMedia).where(ProductMedia.sku == sku)
        )
    return int(count or 0)


def raw_exchange(replica: Replica, head: bytes, parts: list[bytes], *, wait: float = 5.0) -> bytes:
    """Send a request head and body pieces over a socket as given (no end implied), then read
    what the server answers within ``wait`` seconds and close."""
    with socket.create_connection(("127.0.0.1", replica.port), timeout=wait) as connection:
        connection.sendall(head)
        for part in parts:
            connection.sendall(part)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                piece = connection.recv(65536)
                if not piece:
                    break
                answer += piece
        except TimeoutError:
            pass
        return answer


def upload_head(sku: str, content_type: str = "image/png", **headers: str) -> bytes:
    lines = [
        f"POST /api/v1/products/{sku}/media HTTP/1.1",
        "Host: inventory",
        f"Authorization: {ADMIN['Authorization']}",
        f"Content-Type: {content_type}",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def settled(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


# -- upload, serve, delete ------------------------------------------------------------------


def test_an_image_uploaded_to_one_replica_is_served_by_another(
    uploader: Replica, server: Replica, product: str, media_root: Path
) -> None:
    body = png(300_000, seed=1)
    response = upload(uploader, product, body)
    assert response.status_code == 201, response.text
    media = response.json()
    sha256 = hashlib.sha256(body).hexdigest()
    assert media["sha256"] == sha256
    assert media["size"] == len(body)
    assert media["content_type"] == "image/png"
    assert media["url"] == f"/api/v1/media/{media['id']}"
    assert response.headers["location"] == media["url"]
    assert (media_root / "content" / sha256[:2] / sha256[2:4] / sha256).read_bytes() == body

    served = httpx.get(f"{server.url}{media['url']}")
    assert served.status_code == 200
    assert served.content == body
    assert served.headers["content-type"] == "image/png"
    assert served.headers["etag"] == f'"{sha256}"'
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["accept-ranges"] == "bytes"

    shown = httpx.get(f"{server.url}/api/v1/products/{product}").json()
    assert shown["images"] == [
        {"id": media["id"], "url": media["url"], "content_type": "image/png"}
    ]
    assert leftovers(media_root) == []


def test_a_product_lists_its_images_in_upload_order(
    uploader: Replica, server: Replica, product: str
) -> None:
    ids = []
    for seed, (kind, body) in enumerate(
        [
            ("image/jpeg", jpeg()),
            ("image/png", png(seed=2)),
            ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"x" * 100),
        ]
    ):
        response = upload(uploader, product, body, kind)
        assert response.status_code == 201, (seed, response.text)
        ids.append(response.json()["id"])
    listed = httpx.get(f"{server.url}/api/v1/products", params={"q": product}).json()["items"]
    assert [image["id"] for image in listed[0]["images"]] == ids
    assert [image["content_type"] for image in listed[0]["images"]] == [
        "image/jpeg",
        "image/png",
        "image/webp",
    ]


def test_range_is_206_an_unsatisfiable_range_416_and_a_known_etag_304(
    uploader: Replica, server: Replica, product: str
) -> None:
    body = png(10_000, seed=3)
    media = upload(uploader, product, body).json()
    url = f"{server.url}{media['url']}"
    etag = f'"{media["sha256"]}"'

    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == body[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert part.headers["etag"] == etag

    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, body[-10:])
    open_ended = httpx.get(url, headers={"Range": "bytes=9990-"})
    assert (open_ended.status_code, open_ended.content) == (206, body[9990:])

    outside = httpx.get(url, headers={"Range": "bytes=10000-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(body)}"
    assert outside.headers["content-type"] == "application/problem+json"

    # A range for another representation (If-Range) or one a server may ignore: the whole.
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, body)
    several = httpx.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (several.status_code, several.content) == (200, body)

    cached = httpx.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["cache-control"] == "public, max-age=31536000, immutable"

    head = httpx.head(url)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["etag"] == etag
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_deleting_an_image_drops_it_from_the_product_and_the_storage(
    uploader: Replica, server: Replica, product: str, media_root: Path
) -> None:
    body = png(5000, seed=4)
    media = upload(uploader, product, body).json()
    path = MediaStorage(media_root).path_of(media["sha256"])
    assert path.exists()

    customer = CUSTOMER
    delete_url = f"{server.url}/api/v1/products/{product}/media/{media['id']}"
    assert httpx.delete(delete_url).status_code == 401
    assert httpx.delete(delete_url, headers=customer).status_code == 403
    other = f"{server.url}/api/v1/products/{new_sku()}/media/{media['id']}"
    assert httpx.delete(other, headers=ADMIN).status_code == 404

    assert httpx.delete(delete_url, headers=ADMIN).status_code == 204
    shown = httpx.get(f"{server.url}/api/v1/products/{product}")
    assert shown.json()["images"] == [], shown.text
    assert httpx.get(f"{server.url}{media['url']}").status_code == 404
    assert not path.exists()
    assert httpx.delete(delete_url, headers=ADMIN).status_code == 404


def test_the_same_bytes_for_two_products_outlive_one_delete(
    uploader: Replica, server: Replica, product: str, make_sku: Callable[[], str]
) -> None:
    other = new_sku()
    body = {"sku": other, "name": "Lamp", "price": {"amount": 1999, "currency": "USD"}}
    assert httpx.post(f"{uploader.url}/api/v1/products", json=body, headers=ADMIN).is_success
    image = png(6000, seed=5)
    first = upload(uploader, product, image).json()
    second = upload(uploader, other, image).json()
    assert first["sha256"] == second["sha256"]
    assert first["id"] != second["id"]
    gone = httpx.delete(
        f"{uploader.url}/api/v1/products/{product}/media/{first['id']}", headers=ADMIN
    )
    assert gone.status_code == 204
    assert httpx.get(f"{server.url}{second['url']}").content == image


def test_only_an_admin_uploads_and_only_to_a_product_that_exists(
    uploader: Replica, product: str, media_root: Path
) -> None:
    url = f"{uploader.url}/api/v1/products/{product}/media"
    anonymous = httpx.post(url, content=png(), headers={"Content-Type": "image/png"})
    assert anonymous.status_code == 401
    customer = {**CUSTOMER, "Content-Type": "image/png"}
    assert httpx.post(url, content=png(), headers=customer).status_code == 403
    assert upload(uploader, new_sku(), png()).status_code == 404
    assert leftovers(media_root) == []


# -- refusals and failures leave nothing behind -------------------------------------------


@pytest.mark.parametrize(
    ("declared", "body"),
    [
        ("image/png", jpeg()),
        ("image/jpeg", png()),
        ("image/webp", b"RIFF\x00\x00\x00\x00AVI LIST" + b"x" * 100),
        ("image/png", b"GIF89a" + b"x" * 100),
        ("image/png", b"\x89PN"),
    ],
)
async def test_bytes_that_disagree_with_the_content_type_are_415_and_stored_nowhere(
    uploader: Replica,
    product: str,
    media_root: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    declared: str,
    body: bytes,
) -> None:
    response = upload(uploader, product, body, declared)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert leftovers(media_root) == []
    assert await media_rows(sessionmaker, product) == 0


@pytest.mark.parametrize("declared", ["image/gif", "application/octet-stream", "text/plain"])
def test_a_content_type_other_than_jpeg_png_or_webp_is_415(
    uploader: Replica, product: str, declared: str
) -> None:
    assert upload(uploader, product, png(), declared).status_code == 415


def test_an_empty_body_is_400(uploader: Replica, product: str, media_root: Path) -> None:
    response = upload(uploader, product, b"")
    assert response.status_code == 400, response.text
    assert leftovers(media_root) == []


def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(
    uploader: Replica, product: str, media_root: Path
) -> None:
    head = upload_head(product, Content_Length=str(LIMIT + 1))
    answer = raw_exchange(uploader, head, [png(1000)])
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert leftovers(media_root) == []


async def test_a_streamed_body_over_the_limit_is_413_without_reading_the_rest(
    uploader: Replica,
    product: str,
    media_root: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Chunked, never ended: the answer can only come from a server that stopped reading.
    head = upload_head(product, Transfer_Encoding="chunked")
    body = png(LIMIT + 1, seed=6)
    parts = [chunked(body[i : i + 65536]) for i in range(0, len(body), 65536)]
    answer = raw_exchange(uploader, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"application/problem+json" in answer
    assert await settled(lambda: leftovers(media_root) == [])
    assert await media_rows(sessionmaker, product) == 0


def test_an_upload_exactly_at_the_limit_is_stored(uploader: Replica, product: str) -> None:
    assert upload(uploader, product, png(LIMIT, seed=7)).status_code == 201


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_client_gone_mid_upload_leaves_nothing_behind(
    uploader: Replica,
    product: str,
    media_root: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    framing: str,
) -> None:
    body = png(200_000, seed=8)
    if framing == "chunked":
        head = upload_head(product, Transfer_Encoding="chunked")
        parts = [chunked(body)]
    else:  # truncated: fewer bytes than declared, then the connection closes
        head = upload_head(product, Content_Length=str(len(body) + 100_000))
        parts = [body]
    with socket.create_connection(("127.0.0.1", uploader.port)) as connection:
        connection.sendall(head)
        for part in parts:
            connection.sendall(part)
        # Wait until the upload has begun on the server (its temporary file exists).
        assert await settled(lambda: leftovers(media_root) != [])
    assert await settled(lambda: leftovers(media_root) == [])
    assert await media_rows(sessionmaker, product) == 0
    assert "abandoned by the client" in uploader.log.read_text()


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root may mount one; elsewhere the test is skipped)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_full_disk_is_507_and_leaves_nothing_behind(
    settings: InventorySettings,
    small_disk: Path,
    tmp_path: Path,
    product: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    replica = Replica(settings, small_disk, tmp_path / "small.log")
    try:
        response = upload(replica, product, png(600_000, seed=9))
        assert response.status_code == 507, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert leftovers(small_disk) == []
        assert await media_rows(sessionmaker, product) == 0
        # Space is back once the failed upload is gone: a small image still fits.
        assert upload(replica, product, png(50_000, seed=10)).status_code == 201
    finally:
        replica.stop()


# -- the sweep --------------------------------------------------------------------------------


async def test_the_sweep_removes_old_temporary_and_unreferenced_files_only(
    uploader: Replica,
    product: str,
    tmp_path: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    media_root: Path,
) -> None:
    storage = MediaStorage(media_root)
    kept = upload(uploader, product, png(3000, seed=11)).json()
    storage.tmp.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600

    def place(path: Path, *, aged: bool) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if aged:
            os.utime(path, (old, old))
        return path

    crashed_upload = place(storage.tmp / f"{uuid.uuid4().hex}.part", aged=True)
    running_upload = place(storage.tmp / f"{uuid.uuid4().hex}.part", aged=False)
    orphan = place(storage.path_of(hashlib.sha256(b"orphan").hexdigest()), aged=True)
    just_published = place(storage.path_of(hashlib.sha256(b"new").hexdigest()), aged=False)
    referenced = storage.path_of(kept["sha256"])
    os.utime(referenced, (old, old))

    result = await sweep_media_once(sessionmaker=sessionmaker, storage=storage, grace_seconds=60)

    assert not crashed_upload.exists()
    assert not orphan.exists()
    assert running_upload.exists()
    assert just_published.exists()
    assert referenced.exists()
    assert result.temporary_files == 1
    assert result.content_files == 1
    running_upload.unlink()
    just_published.unlink()


async def test_the_sweep_leaves_files_it_did_not_write_and_still_removes_unreferenced_ones(
    tmp_path: Path, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    storage = MediaStorage(tmp_path / "media")
    old = time.time() - 3600

    def place_aged(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (old, old))
        return path

    # What an NFS client leaves when a file open on it is unlinked, or when it crashes.
    nfs_leftover = place_aged(storage.content / "ab" / "cd" / ".nfs0001")
    misplaced_name = hashlib.sha256(b"misplaced").hexdigest()
    assert storage.path_of(misplaced_name).parent != storage.content / "ab" / "cd"
    misplaced = place_aged(storage.content / "ab" / "cd" / misplaced_name)
    orphan = place_aged(storage.path_of(hashlib.sha256(b"orphan beside strays").hexdigest()))

    result = await sweep_media_once(sessionmaker=sessionmaker, storage=storage, grace_seconds=60)

    assert not orphan.exists()
    assert nfs_leftover.exists()
    assert misplaced.exists()
    assert result.content_files == 1


async def test_an_upload_killed_mid_write_leaves_only_a_temporary_file_the_sweep_removes(
    settings: InventorySettings,
    tmp_path: Path,
    product: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    root = tmp_path / "media"
    replica = Replica(settings, root, tmp_path / "killed.log")
    try:
        with socket.create_connection(("127.0.0.1", replica.port)) as connection:
            connection.sendall(upload_head(product, Content_Length="600000") + png(400_000))
            assert await settled(lambda: leftovers(root) != [])
            replica.process.kill()  # a crash: no cleanup runs
            replica.process.wait(10)
    finally:
        replica.stop()
    assert [path.suffix for path in leftovers(root)] == [".part"]
    assert not any(path.is_file() for path in (root / "content").rglob("*"))
    assert await media_rows(sessionmaker, product) == 0

    storage = MediaStorage(root)
    result = await sweep_media_once(sessionmaker=sessionmaker, storage=storage, grace_seconds=0)
    assert result.temporary_files == 1
    assert leftovers(root) == []
