"""The storefront journeys of ``tests/e2e``, run against two of everything behind HAProxy.

The journeys are imported, so pytest collects them here too, where ``platform`` is the
replicas (``tests/replicas/conftest.py``): every request goes through the load balancer to
either gateway and on to either replica of a service, the sixty buyers racing for the last
ten units too (their sixty logins from one address stay under the login limit the limit
test lowers, ``tests.replicas.harness.LOGIN_LIMIT``).
"""

from __future__ import annotations

import pytest

from tests.e2e.test_access import (  # noqa: F401 (collected here)
    test_admin_routes_refuse_customers_and_anonymous_callers,
    test_another_customers_order_and_payment_are_invisible,
    test_calling_a_service_directly_without_a_token_is_refused,
    test_forged_tokens_are_refused_by_the_gateway_and_by_every_service,
)
from tests.e2e.test_concurrency_and_retries import (  # noqa: F401 (collected here)
    test_retrying_an_order_with_its_idempotency_key_places_it_once,
    test_sixty_buyers_race_for_the_last_ten_units_and_exactly_ten_are_confirmed,
)
from tests.e2e.test_shopping import (  # noqa: F401 (collected here)
    test_a_declined_card_cancels_the_order_and_puts_the_stock_back,
    test_a_new_customer_registers_logs_in_browses_orders_pays_and_the_stock_is_taken,
    test_an_admin_ships_and_delivers_a_paid_order_which_can_then_not_be_cancelled,
    test_an_order_for_more_than_is_in_stock_is_rejected_whole,
    test_cancelling_a_paid_order_refunds_it_and_puts_the_stock_back,
)

pytestmark = [pytest.mark.replicas, pytest.mark.slow]
