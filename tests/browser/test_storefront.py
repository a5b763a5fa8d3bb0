"""The storefront in a real browser (Debian's Chromium), against the whole running platform,
from the storefront's own origin: CORS, the refresh cookie and the saga as a person meets them.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, Request, Route, expect

from tests.browser.conftest import PAGE_SIZE, open_storefront
from tests.browser.steps import (
    SAGA_MS,
    add_to_cart,
    check_page,
    fill_address,
    place_order,
    refresh_cookie,
    register,
    sign_in,
)
from tests.conftest import ProductFactory
from tests.harness.storefront import Shopper, Storefront, new_email

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CACHE_ATTEMPTS = 20


def _renewal(url: str) -> bool:
    return "/auth/refresh" in url


async def test_a_shopper_finds_buys_watches_and_cancels_an_order_with_its_refund_shown(
    page: Page, context: BrowserContext, storefront: str, product: ProductFactory, artifacts: Path
) -> None:
    sku = await product(stock=5, price=2500)
    await expect(page.get_by_role("heading", name="Products")).to_be_visible()
    await check_page(page, artifacts, "catalog")

    await page.get_by_label("Search products").fill(sku)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=f"Product {sku}").click()
    await expect(page.get_by_role("heading", name=f"Product {sku}")).to_be_visible()
    await expect(page.get_by_text("$25.00")).to_be_visible()
    await expect(page.get_by_text("5 in stock")).to_be_visible()
    await check_page(page, artifacts, "product")

    await page.get_by_label("Quantity").fill("2")
    await page.get_by_role("button", name="Add to cart").click()
    await page.get_by_role("link", name="Cart (2)").click()
    await expect(page.get_by_text("Estimated total: $50.00")).to_be_visible()
    await check_page(page, artifacts, "cart")

    await page.get_by_role("link", name="Checkout").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await check_page(page, artifacts, "sign-in")
    email = new_email("browser")
    await register(page, email)
    await expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    cookie = await refresh_cookie(context)
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/v1/auth"
    stored = await page.evaluate("JSON.stringify({...localStorage, ...sessionStorage})")
    assert "eyJ" not in stored, "a token was written to web storage"
    await fill_address(page)
    await check_page(page, artifacts, "checkout")

    order_id = await place_order(page, "tok_visa")
    await expect(page.locator("#order-status")).to_have_text("Confirmed", timeout=SAGA_MS)
    history = page.locator("#order-history")
    for step in ("Pending", "Awaiting payment", "Confirmed"):
        await expect(history).to_contain_text(step)
    await expect(page.get_by_text("Total: $50.00")).to_be_visible()
    await check_page(page, artifacts, "order-confirmed")
    await page.screenshot(path=artifacts / "storefront.png")  # the one the README shows

    await page.get_by_role("link", name="Orders", exact=True).click()
    await expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text="Confirmed")).to_have_count(1)
    await check_page(page, artifacts, "order-history")

    await page.get_by_role("row").filter(has_text="Confirmed").get_by_role("link").click()
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.locator("#order-status")).to_have_text("Refunded", timeout=SAGA_MS)
    await expect(page.locator("#order-refund")).to_have_text("Refunded $50.00 to your card.")
    await expect(page.locator("#order-reason")).to_contain_text("You cancelled this order")
    assert order_id in page.url
    await check_page(page, artifacts, "order-refunded")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("alert")).to_have_text("You are signed out.")
    assert await refresh_cookie(context) is None


async def test_the_catalog_pages_through_search_results_with_its_cursor(
    page: Page, product: ProductFactory
) -> None:
    tag = uuid.uuid4().hex[:10].upper()
    skus = [await product(stock=1, sku=f"E2E-{tag}-{n}") for n in range(PAGE_SIZE + 1)]
    await page.get_by_label("Search products").fill(tag)
    await page.get_by_label("Search products").press("Enter")
    products = page.get_by_role("list", name="Products").get_by_role("link")
    await expect(products).to_have_count(PAGE_SIZE)
    first_page = await products.all_inner_texts()

    await page.get_by_role("button", name="Next page").click()
    await expect(page.get_by_text("Page 2")).to_be_visible()
    await expect(products).to_have_count(1)
    seen = {*first_page, *await products.all_inner_texts()}
    assert seen == {f"Product {sku}" for sku in skus}
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    await page.get_by_role("button", name="Previous page").click()
    await expect(products).to_have_count(PAGE_SIZE)
    assert await products.all_inner_texts() == first_page


async def test_a_declined_card_is_told_in_words_and_charges_nothing(
    page: Page, shop: Storefront, product: ProductFactory, artifacts: Path
) -> None:
    sku = await product(stock=3)
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    await add_to_cart(page, sku)
    await page.get_by_role("link", name="Cart (1)").click()
    await page.get_by_role("link", name="Checkout").click()
    await fill_address(page)

    await place_order(page, "tok_chargeDeclined")

    await expect(page.locator("#order-status")).to_have_text("Cancelled", timeout=SAGA_MS)
    await expect(page.locator("#order-reason")).to_have_text(
        "Your card was declined. You were not charged."
    )
    await expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    await check_page(page, artifacts, "order-declined")


async def test_the_last_unit_sold_to_someone_else_shows_sold_out(
    page: Page, shop: Storefront, product: ProductFactory, artifacts: Path
) -> None:
    sku = await product(stock=1)
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    await add_to_cart(page, sku)
    rival = await shop.new_customer()
    assert (await shop.buy(rival, {sku: 1}))["status"] == "confirmed"

    await page.get_by_role("link", name="Cart (1)").click()
    await page.get_by_role("link", name="Checkout").click()
    await fill_address(page)
    await place_order(page, "tok_visa")

    await expect(page.locator("#order-status")).to_have_text("Rejected", timeout=SAGA_MS)
    await expect(page.locator("#order-reason")).to_have_text(
        "An item sold out before we could reserve it for you."
    )
    await check_page(page, artifacts, "order-sold-out")
    # The product page revalidates; the shop's own catalog cache may answer for a moment
    # longer (DESIGN: at most 2 s by default).
    await page.goto(f"{page.url.split('#')[0]}#/product/{sku}")
    sold_out = page.get_by_role("button", name="Sold out")
    for _ in range(CACHE_ATTEMPTS):
        await expect(page.get_by_role("heading", name=f"Product {sku}")).to_be_visible()
        if await sold_out.count():
            break
        await asyncio.sleep(0.5)
        await page.reload()
    await expect(sold_out).to_be_disabled()
    await expect(page.get_by_text("Sold out", exact=True).first).to_be_visible()


async def test_an_access_token_the_gateway_refuses_is_renewed_silently_from_the_cookie(
    page: Page, context: BrowserContext, shop: Storefront
) -> None:
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    first_cookie = await refresh_cookie(context)
    # As when the token expired on the gateway's clock: the next call is a 401, which the
    # page answers by renewing from the cookie and asking again, no sign-in form shown.
    await page.evaluate("window.storefrontTest.spoilAccessToken()")

    async with page.expect_response(re.compile(r"/auth/refresh")) as renewal:
        await page.get_by_role("link", name="Orders", exact=True).click()
    assert (await renewal.value).status == 200
    await expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
    assert (await refresh_cookie(context)) != first_cookie, "the refresh cookie was not rotated"


async def test_the_access_token_is_renewed_before_it_expires(
    context: BrowserContext, storefront: str, shop: Storefront
) -> None:
    """The renewal timer, with the page's clock run forward (the gateway's token lives 15
    minutes; the shared platform cannot shorten it for one test)."""
    page = await context.new_page()
    await page.clock.install()
    await open_storefront(page, storefront)
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)

    async with page.expect_response(re.compile(r"/auth/refresh")) as renewal:
        await page.clock.run_for("14:30")  # 60 s before the 15-minute expiry, and a bit
    assert (await renewal.value).status == 200
    await page.get_by_role("link", name="Orders", exact=True).click()
    await expect(page.get_by_role("heading", name="Your orders")).to_be_visible()


async def test_a_reload_mid_checkout_keeps_the_session_the_cart_and_the_address(
    page: Page, context: BrowserContext, shop: Storefront, product: ProductFactory
) -> None:
    sku = await product(stock=2)
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    await add_to_cart(page, sku, 2)
    await page.get_by_role("link", name="Cart (2)").click()
    await page.get_by_role("link", name="Checkout").click()
    await fill_address(page)

    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")

    await expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    await expect(page.get_by_text(f"Signed in as {shopper.email}")).to_be_visible()
    await expect(page.get_by_text(f"2 \N{MULTIPLICATION SIGN} Product {sku}")).to_be_visible()
    await expect(page.locator("#city")).to_have_value("Arlington")
    await place_order(page, "tok_mastercard")
    await expect(page.locator("#order-status")).to_have_text("Confirmed", timeout=SAGA_MS)


async def test_two_tabs_renewing_at_once_both_stay_signed_in(
    page: Page, context: BrowserContext, storefront: str, shop: Storefront
) -> None:
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    other = await context.new_page()
    await open_storefront(other, storefront)
    await expect(other.get_by_text(f"Signed in as {shopper.email}")).to_be_visible()

    renewals: list[str] = []  # "start" and "end" of every renewal, both tabs, in order

    def started(request: Request) -> None:
        if _renewal(request.url):
            renewals.append("start")

    def finished(request: Request) -> None:
        if _renewal(request.url):
            renewals.append("end")

    for tab in (page, other):
        tab.on("request", started)
        tab.on("requestfinished", finished)

    async def slowly(route: Route) -> None:
        await asyncio.sleep(0.5)  # long enough for the two renewals to overlap, unless locked
        await route.continue_()

    await context.route(re.compile(r"/auth/refresh"), slowly)

    # Both tabs find their token refused at once: one renewal at a time (Web Locks), each
    # with the cookie the other just rotated.
    for tab in (page, other):
        await tab.evaluate("window.storefrontTest.spoilAccessToken()")
    await asyncio.gather(
        page.get_by_role("link", name="Orders", exact=True).click(),
        other.get_by_role("link", name="Orders", exact=True).click(),
    )
    for tab in (page, other):
        await expect(tab.get_by_role("heading", name="Your orders")).to_be_visible()
    # Never two renewals in flight: start, end, start, end.
    assert renewals == ["start", "end"] * 2
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.get_by_text(f"Signed in as {shopper.email}")).to_be_visible()


async def test_signing_out_clears_the_cookie_and_a_reload_stays_signed_out(
    page: Page, context: BrowserContext, storefront: str, shop: Storefront
) -> None:
    shopper = await shop.new_customer()
    await sign_in(page, shopper.email)
    assert await refresh_cookie(context) is not None

    await page.get_by_role("button", name="Sign out").click()

    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert await refresh_cookie(context) is None
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await page.goto(f"{storefront}/#/orders")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_api_errors_are_shown_in_words(
    page: Page, storefront: str, shop: Storefront, artifacts: Path
) -> None:
    taken = await shop.new_customer()
    await page.get_by_role("link", name="Register").click()
    await page.get_by_label("Email").fill(taken.email)
    await page.get_by_label("Password", exact=True).fill("another long passphrase")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("alert")).to_contain_text("already")

    await page.goto(f"{storefront}/#/signin")
    await page.get_by_label("Email").fill(taken.email)
    await page.get_by_label("Password").fill("not the password at all")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).not_to_be_empty()
    await expect(page.get_by_role("alert")).not_to_contain_text("HTTP")

    # The shared platform's limits are far above what one test can send, so the gateway's
    # 429 is replayed as it answers one (problem+json and Retry-After), to see it told.
    await page.route(
        re.compile(r"/auth/token"),
        lambda route: route.fulfill(
            status=429,
            headers={
                "Content-Type": "application/problem+json",
                "Retry-After": "17",
                "Access-Control-Allow-Origin": storefront,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Expose-Headers": "Retry-After",
            },
            body='{"type":"/problems/rate-limited","title":"Too Many Requests","status":429,'
            '"detail":"Rate limit exceeded.","request_id":"r1"}',
        ),
    )
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("please wait 17 seconds")
    await check_page(page, artifacts, "error-429")


async def test_the_shop_is_usable_on_a_phone_sized_screen(
    browser_phone: Page, product: ProductFactory, artifacts: Path
) -> None:
    page = browser_phone
    sku = await product(stock=4)
    await page.get_by_label("Search products").fill(sku)
    await page.keyboard.press("Enter")
    await page.get_by_role("link", name=f"Product {sku}").click()
    await expect(page.get_by_text("4 in stock")).to_be_visible()
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, "the page scrolls sideways on a phone"
    await check_page(page, artifacts, "phone-product")


# A one-pixel PNG a browser can decode (the upload checks the bytes, the page must draw them).
ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


async def test_a_product_page_shows_the_images_uploaded_for_it(
    page: Page, shop: Storefront, admin: Shopper, product: ProductFactory, artifacts: Path
) -> None:
    sku = await product(stock=3)
    uploaded = await shop.client.post(
        f"/api/v1/products/{sku}/media",
        content=ONE_PIXEL_PNG,
        headers={**admin.headers, "Content-Type": "image/png"},
    )
    assert uploaded.status_code == 201, uploaded.text
    # The shop's catalog cache may answer for a moment (DESIGN: at most 2 s by default).
    photo = page.locator("img.photo")
    for _ in range(CACHE_ATTEMPTS):
        await page.goto(f"{page.url.split('#')[0]}#/product/{sku}")
        await expect(page.get_by_role("heading", name=f"Product {sku}")).to_be_visible()
        if await photo.count():
            break
        await asyncio.sleep(0.5)
    await expect(photo).to_have_attribute("src", re.compile(uploaded.json()["url"] + "$"))
    await photo.scroll_into_view_if_needed()
    drawn = "() => { const img = document.querySelector('img.photo');"
    drawn += " return img !== null && img.complete && img.naturalWidth === 1; }"
    await page.wait_for_function(drawn)  # the bytes came through the gateway and decoded
    await check_page(page, artifacts, "product-with-image")
