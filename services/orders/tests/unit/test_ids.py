"""Order ids are UUIDv7: valid, and sorted by creation."""

from __future__ import annotations

import time

from orders.ids import new_id


def test_ids_are_version_7_rfc_4122() -> None:
    value = new_id()
    assert value.version == 7
    assert value.variant == "specified in RFC 4122"


def test_ids_created_later_sort_later() -> None:
    first = new_id()
    time.sleep(0.002)  # a later millisecond; ids within one millisecond are not ordered
    assert new_id() > first
