"""Fixtures of the browser suite: Debian's Chromium driven by Playwright, the storefront
served from its own origin (so every API call is cross-origin and CORS is real), the whole
platform behind it.

The storefront is served on ``platform.storefront_port``, which the gateway's CORS
allow-list names (tests.harness.platform). Its ``config.js`` is replaced to point at the
platform's gateway and to turn on the page's test hooks.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.harness.platform import ROOT, Platform

STOREFRONT = ROOT / "storefront"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
# Headless in a container: no sandbox (no user namespaces), no GPU, and nothing that calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PAGE_SIZE = 2  # products per catalog page: paging shows with a few products
PHONE: ViewportSize = {"width": 390, "height": 844}


class StorefrontFiles(SimpleHTTPRequestHandler):
    """storefront/ as a static server serves it, with this run's config.js."""

    extensions_map = {  # noqa: RUF012 (the base class's own attribute)
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".png": "image/png",
        "": "application/octet-stream",
    }

    def __init__(self, *args: Any, config: bytes, **kwargs: Any) -> None:
        self.config = config
        super().__init__(*args, directory=str(STOREFRONT), **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/config.js":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(self.config)))
        self.end_headers()
        self.wfile.write(self.config)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def storefront(platform: Platform) -> Iterator[str]:
    """The storefront's origin, its API the platform's gateway."""
    config = {"apiBase": f"{platform.gateway}/api/v1", "testHooks": True, "pageSize": PAGE_SIZE}
    handler = partial(StorefrontFiles, config=f"export default {json.dumps(config)};\n".encode())
    server = ThreadingHTTPServer(("127.0.0.1", platform.storefront_port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield platform.storefront_origin
    finally:
        server.shutdown()
        server.server_close()


# A page's own waits (a sign-in hashes a password, a product waits for its price replica) on
# a shared two-core machine: more than Playwright's default of 5 s.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (make e2e-browser does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile: no cookie, no storage."""
    context = await browser.new_context(viewport=DESKTOP)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(context: BrowserContext, storefront: str) -> Page:
    page = await context.new_page()
    await open_storefront(page, storefront)
    return page


async def open_storefront(page: Page, origin: str, route: str = "#/") -> None:
    # The page's console, in the test's captured output (shown when it fails).
    page.on("console", lambda message: print(f"[console {message.type}] {message.text}"))
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    await page.goto(f"{origin}/{route}")
    await page.wait_for_selector("body[data-ready=true]")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser_phone(browser: Browser, storefront: str) -> AsyncIterator[Page]:
    """The storefront on a phone-sized touch screen."""
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await open_storefront(page, storefront)
        yield page
    finally:
        await context.close()
