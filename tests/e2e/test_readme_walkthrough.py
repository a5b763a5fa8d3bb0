"""The README's curl walkthrough runs as written against the running platform."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from tests.conftest import ProductFactory
from tests.harness.platform import Platform
from tests.services import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WALKTHROUGH_SKU = "MUG-CLASSIC"


def walkthrough_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A walk through the API", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "the README's walkthrough has no bash block"
    return match.group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
async def test_the_readme_walkthrough_orders_confirms_cancels_and_refunds(
    platform: Platform, product: ProductFactory
) -> None:
    await product(stock=120, price=1299, sku=WALKTHROUGH_SKU)
    script = walkthrough_script().replace(
        "API=http://127.0.0.1:8000/api/v1", f"API={platform.gateway}/api/v1"
    )
    assert f"API={platform.gateway}" in script, "the walkthrough no longer sets API as expected"
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(shell.communicate(), timeout=60)
    output = out.decode()
    assert shell.returncode == 0, err.decode()
    assert '["confirmed",{"amount":2598,"currency":"USD"}]' in output
    assert '"refund_pending"' in output
    assert '["pending","awaiting_payment","confirmed","refund_pending","refunded"]' in output
    assert '["refunded",{"amount":2598,"currency":"USD"}]' in output
