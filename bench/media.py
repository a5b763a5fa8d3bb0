"""Media upload benchmark: concurrent 10 MiB uploads through the gateway, memory and speed.

The proof that nothing buffers a whole body: 20 uploads of 10 MiB at once (200 MiB in
flight) raise no process's resident memory by more than 32 MiB. The platform runs as in the
end-to-end tests (``bench.shop.stack``); the uploads go through the gateway to inventory,
which writes them to ``MEDIA_ROOT``. The RSS of the gateway and inventory is sampled every
20 ms. The throughput is set against a plain ``cp`` of the same bytes on the same disk (the
files, already written, copied beside the media folder; then ``sync``, since an upload
fsyncs its file). Prints figures, never pass/fail.

``python -m bench.media [--uploads 20] [--mib 10] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx

from bench.shop.memory import rss_kib
from bench.shop.stack import running_platform
from tests.harness.storefront import Storefront, create_admin, new_email

WATCHED = ("gateway", "inventory")
RSS_BUDGET_MIB = 32


class RssWatch:
    """The peak RSS of each watched process while the ``with`` block runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: rss_kib(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_kib(pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _image(size: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + os.urandom(size - 4)


async def _upload_all(
    client: httpx.AsyncClient, sku: str, token: str, bodies: list[bytes]
) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}

    async def one(body: bytes) -> None:
        reply = await client.post(f"/api/v1/products/{sku}/media", content=body, headers=headers)
        assert reply.status_code == 201, reply.text

    started = time.perf_counter()
    await asyncio.gather(*(one(body) for body in bodies))
    return time.perf_counter() - started


def _cp_seconds(bodies: list[bytes], beside: Path) -> tuple[float, float]:
    """Seconds for ``cp`` of the files (all at once, as the uploads run), then with ``sync``."""
    source, target = beside / "cp-source", beside / "cp-target"
    source.mkdir()
    target.mkdir()
    for n, body in enumerate(bodies):
        (source / f"{n}.jpg").write_bytes(body)
    subprocess.run(["sync"], check=True)  # noqa: S607
    try:
        started = time.perf_counter()
        copies = [
            subprocess.Popen(["cp", source / f"{n}.jpg", target / f"{n}.jpg"])  # noqa: S603, S607
            for n in range(len(bodies))
        ]
        for copy in copies:
            copy.wait()
        copied = time.perf_counter() - started
        subprocess.run(["sync"], check=True)  # noqa: S607
        return copied, time.perf_counter() - started
    finally:
        shutil.rmtree(source)
        shutil.rmtree(target)


async def run(uploads: int, mib: int, rounds: int) -> None:
    with running_platform({"COMMERCE_ACCESS_LOG": "false"}) as platform:
        media_root = Path(platform.env["INVENTORY_MEDIA_ROOT"])
        async with httpx.AsyncClient(base_url=platform.gateway, timeout=300) as client:
            shop = Storefront(client)
            email = new_email("bench-admin")
            await asyncio.to_thread(create_admin, platform, email)
            admin = await shop.login(email)
            sku = await shop.create_product(admin, stock=1)
            pids = {name: platform.pids()[name] for name in WATCHED}
            total = uploads * mib * 1_048_576
            print(f"{uploads} concurrent uploads of {mib} MiB through the gateway, {rounds} rounds")
            print(f"media root: {media_root}")
            for round_ in range(1, rounds + 1):
                bodies = [_image(mib * 1_048_576) for _ in range(uploads)]
                with RssWatch(pids) as watch:
                    seconds = await _upload_all(client, sku, admin.access_token, bodies)
                copied, synced = await asyncio.to_thread(_cp_seconds, bodies, media_root.parent)
                rise = {name: (watch.peak[name] - watch.before[name]) / 1024 for name in WATCHED}
                print(f"round {round_}:")
                print(
                    f"  uploads: {seconds:.2f} s, {total / seconds / 1_048_576:.0f} MiB/s"
                    f" (cp: {copied:.2f} s, {total / copied / 1_048_576:.0f} MiB/s;"
                    f" cp + sync: {synced:.2f} s, {total / synced / 1_048_576:.0f} MiB/s)"
                )
                for name in WATCHED:
                    verdict = "within" if rise[name] <= RSS_BUDGET_MIB else "OVER"
                    print(
                        f"  {name} RSS: {watch.before[name] / 1024:.0f} MiB before,"
                        f" peak {watch.peak[name] / 1024:.0f} MiB, rise {rise[name]:.1f} MiB"
                        f" ({verdict} the {RSS_BUDGET_MIB} MiB budget)"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--mib", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    # The harness's processes run as "test"; this process only prepares their database.
    os.environ.setdefault("COMMERCE_ENVIRONMENT", "development")
    asyncio.run(run(arguments.uploads, arguments.mib, arguments.rounds))


if __name__ == "__main__":
    main()
