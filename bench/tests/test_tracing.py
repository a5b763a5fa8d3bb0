"""The benchmark's tracing switch: off adds nothing, on points every process at a sink."""

from __future__ import annotations

import httpx

from bench.shop.tracing import traced


def test_without_a_ratio_the_platform_gets_no_tracing_settings() -> None:
    with traced(None) as overrides:
        assert overrides == {}


def test_with_a_ratio_every_process_exports_to_a_sink_that_answers_like_a_collector() -> None:
    with traced(0.1) as overrides:
        assert overrides["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert overrides["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
        endpoint = overrides["OTEL_EXPORTER_OTLP_ENDPOINT"]
        reply = httpx.post(
            f"{endpoint}/v1/traces",
            content=b"",
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert reply.status_code == 200
