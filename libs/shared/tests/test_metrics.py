from __future__ import annotations

import re

import httpx


def sample_value(exposition: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", exposition, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    labels = 'method="GET",route="/widgets/{widget_id}",status="200"'
    before = sample_value((await client.get("/metrics")).text, "http_requests_total", labels)
    await client.get("/widgets/1")
    await client.get("/widgets/2")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = sample_value(response.text, "http_requests_total", labels)
    assert after == before + 2
    assert "/widgets/1" not in response.text  # raw paths never become labels


async def test_latency_is_observed_per_route_and_unmatched_paths_share_one_label(
    client: httpx.AsyncClient,
) -> None:
    labels = 'method="GET",route="/widgets/{widget_id}"'
    before = sample_value(
        (await client.get("/metrics")).text, "http_request_duration_seconds_count", labels
    )
    await client.get("/widgets/3")
    await client.get("/nowhere/at/all")
    await client.get("/elsewhere")
    exposition = (await client.get("/metrics")).text
    assert sample_value(exposition, "http_request_duration_seconds_count", labels) == before + 1
    unmatched = 'method="GET",route="<unmatched>",status="404"'
    assert sample_value(exposition, "http_requests_total", unmatched) >= 2
    assert "/nowhere" not in exposition
