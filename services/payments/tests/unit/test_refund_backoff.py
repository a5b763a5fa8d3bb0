"""The pause before each retry of an owed refund: doubling, capped, jittered down by half."""

from __future__ import annotations

import pytest

from payments.config import PaymentsSettings
from payments.payment.refunds import RefundBackoff


def backoff(jitter: float) -> RefundBackoff:
    return RefundBackoff(base_seconds=5.0, max_seconds=600.0, random=lambda: jitter)


def test_pause_doubles_from_the_base_up_to_the_cap_without_jitter() -> None:
    pauses = [backoff(1.0).pause(attempts) for attempts in range(1, 10)]

    assert pauses == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0]


@pytest.mark.parametrize("attempts", [1, 4, 8, 1_000])
def test_jitter_keeps_each_pause_between_half_and_all_of_its_ceiling(attempts: int) -> None:
    ceiling = backoff(1.0).pause(attempts)

    assert backoff(0.0).pause(attempts) == ceiling / 2
    assert ceiling / 2 < backoff(0.3).pause(attempts) < ceiling


def test_real_jitter_spreads_refunds_owed_since_one_outage() -> None:
    real = RefundBackoff(base_seconds=5.0, max_seconds=600.0)

    pauses = {real.pause(3) for _ in range(50)}

    assert len(pauses) > 40
    assert all(10.0 <= pause <= 20.0 for pause in pauses)


def test_settings_refuse_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError, match="refund_backoff_max_seconds"):
        PaymentsSettings(refund_backoff_base_seconds=30.0, refund_backoff_max_seconds=10.0)


def test_settings_read_the_refund_retry_policy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMENTS_REFUND_BACKOFF_BASE_SECONDS", "2.5")
    monkeypatch.setenv("PAYMENTS_REFUND_BACKOFF_MAX_SECONDS", "120")
    monkeypatch.setenv("PAYMENTS_REFUND_RECONCILE_INTERVAL_SECONDS", "1")

    settings = PaymentsSettings()

    policy = RefundBackoff.from_settings(settings)
    assert (policy.base_seconds, policy.max_seconds) == (2.5, 120.0)
    assert settings.refund_reconcile_interval_seconds == 1.0
