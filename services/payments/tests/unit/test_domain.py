"""Pure rules, no I/O: token outcomes, backoff schedule, ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from payments.config import PaymentsSettings
from payments.provider import DeclineCode, ProviderUnavailableError, RetryPolicy
from payments.provider.fake import decline_for


@pytest.mark.parametrize(
    ("card", "decline"),
    [
        ("tok_visa", None),
        ("tok_mastercard", None),
        ("tok_chargeDeclined", DeclineCode.CARD_DECLINED),
        ("tok_insufficientFunds", DeclineCode.INSUFFICIENT_FUNDS),
        ("tok_unknown", DeclineCode.INVALID_PAYMENT_METHOD),
        ("TOK_VISA", DeclineCode.INVALID_PAYMENT_METHOD),
    ],
)
def test_fake_provider_answers_each_test_token_deterministically(
    card: str, decline: DeclineCode | None
) -> None:
    assert decline_for(card) == decline


def test_processing_error_token_is_a_transient_failure_that_names_no_token() -> None:
    with pytest.raises(ProviderUnavailableError) as raised:
        decline_for("tok_processingError")
    assert "tok_" not in str(raised.value)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=6, initial_backoff_seconds=0.2, max_backoff_seconds=1.0)
    assert policy.pauses() == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_single_attempt_policy_never_pauses() -> None:
    assert (
        RetryPolicy(max_attempts=1, initial_backoff_seconds=1, max_backoff_seconds=1).pauses() == []
    )


def test_reconciler_age_must_outlast_a_charges_retry_pauses() -> None:
    # Pauses 0.2 + 0.4 + 0.8 = 1.4 s: a payment pending for less may still be being charged.
    retries = {
        "provider_max_attempts": 4,
        "provider_backoff_initial_seconds": 0.2,
        "provider_backoff_max_seconds": 2.0,
    }
    with pytest.raises(ValidationError, match="reconcile_after_seconds"):
        PaymentsSettings(reconcile_after_seconds=1.4, **retries)  # type: ignore[arg-type]
    assert PaymentsSettings(reconcile_after_seconds=1.5, **retries).reconcile_after_seconds == 1.5  # type: ignore[arg-type]
