"""The fault suite's process-agnostic tests of ``tests/faults``, run against two of everything
behind HAProxy: the broker stopped and started, every database connection cut, a poison event
replayed from its DLQ. (Killing a worker is ``test_replicas``' kill -9 test, which kills one
replica of every kind.)

Imported, so pytest collects them here too, where ``platform`` is the replicas
(``tests/replicas/conftest.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import stream  # noqa: F401 (the fixture these tests use)
from tests.faults.test_broker_outage import (  # noqa: F401 (collected here)
    test_the_broker_stopped_and_started_mid_stream_loses_no_order,
)
from tests.faults.test_database_disconnects import (  # noqa: F401 (collected here)
    test_terminated_database_connections_under_load_lose_and_repeat_nothing,
)
from tests.faults.test_dlq_replay import (  # noqa: F401 (collected here)
    test_a_poison_event_waits_in_the_dlq_and_a_replay_after_the_fix_completes_the_order,
)

pytestmark = [pytest.mark.replicas, pytest.mark.slow]
