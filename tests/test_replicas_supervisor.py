"""The supervisor of ``make replicas`` gives every process the time its drain may take."""

from __future__ import annotations

from infra.replicas.supervisor import STOP_SECONDS
from shared.server import GRACEFUL_SHUTDOWN_SECONDS
from shared.settings import BaseServiceSettings


def test_the_stop_timeout_outlasts_an_apps_shutdown_and_a_workers_two_drains() -> None:
    drain = BaseServiceSettings.model_fields["worker_shutdown_timeout_seconds"].default
    # A worker drains its consumers, then its relay, each bounded by the timeout.
    assert 2 * drain < STOP_SECONDS
    assert STOP_SECONDS > GRACEFUL_SHUTDOWN_SECONDS
