"""What a person does in the storefront, and the checks every page gets (screenshot, axe)."""

from __future__ import annotations

import json
from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import BrowserContext, Page, expect

from tests.harness.storefront import ADDRESS, PASSWORD

REFRESH_COOKIE = "refresh_token"
SAGA_MS = 60_000  # bound on the saga as the page shows it; only stops a hung test
BLOCKING = ("serious", "critical")

_axe = Axe()  # axe-core as axe-playwright-python ships it


async def check_page(page: Page, artifacts: Path, name: str) -> None:
    """A screenshot under artifacts/, and no serious or critical axe-core violation."""
    await page.screenshot(path=artifacts / f"{name}.png", full_page=True)
    results = await _axe.run(page)
    blocking = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]
    assert not blocking, f"accessibility violations on {name}: {json.dumps(blocking, indent=1)}"


async def register(page: Page, email: str) -> None:
    """From the sign-in page: create the account (which signs in)."""
    await page.get_by_role("link", name="Create an account").click()
    # The route changes on the next turn of the page's loop: fill the new form, not the old.
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


async def sign_in(page: Page, email: str) -> None:
    await page.get_by_role("link", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


async def add_to_cart(page: Page, sku: str, quantity: int = 1) -> None:
    await page.goto(f"{page.url.split('#')[0]}#/product/{sku}")
    await expect(page.get_by_role("heading", name=f"Product {sku}")).to_be_visible()
    await page.get_by_label("Quantity").fill(str(quantity))
    await page.get_by_role("button", name="Add to cart").click()
    await expect(page.get_by_role("alert")).to_contain_text("to your cart")


async def fill_address(page: Page) -> None:
    for name, value in ADDRESS.items():
        await page.locator(f"#{name}").fill(value)


async def place_order(page: Page, card: str) -> str:
    """On the checkout page: pay with ``card``; the order's id once its page shows."""
    await page.get_by_label("Card").select_option(card)
    await page.get_by_role("button", name="Place order").click()
    await expect(page.locator("#order-status")).to_be_visible()
    return page.url.rsplit("/", 1)[-1]


async def order_status(page: Page) -> str:
    return await page.locator("#order-status").inner_text()


async def refresh_cookie(context: BrowserContext) -> dict[str, object] | None:
    cookies = [c for c in await context.cookies() if c.get("name") == REFRESH_COOKIE]
    return dict(cookies[0]) if cookies else None
