"""Schemathesis against the gateway's merged OpenAPI, authenticated, all phases.

Every operation of the public API is called with generated valid and invalid input
(examples, coverage, fuzzing), then in generated sequences that follow the API's links
(stateful). The platform must never answer a 5xx, and every answer must match the document.
The example budget per operation is bounded, and the seed fixed, so the run fits CI and a
failure reproduces.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ProductFactory
from tests.fuzz.config import RealData, write_config
from tests.harness.platform import Platform
from tests.harness.storefront import Shopper, Storefront, create_admin, new_email

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

MAX_EXAMPLES = 40
SEED = 20261122
RUN_BOUND_SECONDS = 900  # only stops a hung run
CHECKS = "not_a_server_error,response_schema_conformance"
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture(scope="module")
async def fuzzer(platform: Platform, shop: Storefront) -> Shopper:
    """A customer promoted to admin: every operation is open to it, ordering included."""
    email = new_email("fuzzer")
    assert (await shop.register(email)).status_code == 201
    await asyncio.to_thread(create_admin, platform, email, promote=True)
    return await shop.login(email)


@pytest.fixture
async def real_data(shop: Storefront, fuzzer: Shopper, product: ProductFactory) -> RealData:
    """Products with plenty of stock, and a paid order with its payment."""
    skus = [await product(stock=100_000) for _ in range(2)]
    order = await shop.buy(fuzzer, {skus[0]: 1})
    payments = await shop.payments_of(fuzzer, order["id"])
    return RealData(skus=skus, order_ids=[order["id"]], payment_ids=[p["id"] for p in payments])


def schemathesis(
    platform: Platform, token: str, config: Path, reports: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{platform.gateway}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(reports),
        "--output-sanitize",
        "true",
    ]
    return subprocess.run(
        command,
        cwd=reports,  # its caches land there, not in the repository
        capture_output=True,
        text=True,
        timeout=RUN_BOUND_SECONDS,
        check=False,
    )


async def test_the_public_api_never_fails_and_always_answers_as_documented(
    platform: Platform, fuzzer: Shopper, real_data: RealData, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "schemathesis.toml", real_data)
    result = await asyncio.to_thread(schemathesis, platform, fuzzer.access_token, config, tmp_path)
    (tmp_path / "schemathesis.out").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
