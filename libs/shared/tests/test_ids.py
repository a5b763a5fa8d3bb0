from __future__ import annotations

import time
import uuid

from shared.ids import new_id, unix_seconds_of


def test_ids_are_version_7_rfc_variant_and_unique() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in ids)
    assert len(set(ids)) == len(ids)


def test_ids_carry_the_creation_millisecond_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(200)]
    after = time.time_ns() // 1_000_000
    stamps = [value.int >> 80 for value in ids]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= stamps[-1] <= after


def test_an_id_tells_when_it_was_made() -> None:
    before = time.time()
    made = new_id()
    after = time.time()
    assert before - 0.001 <= unix_seconds_of(made) <= after
