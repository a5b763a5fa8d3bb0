from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from shared.runtime import YOUNG_GENERATION_THRESHOLD, settle_garbage_collector
before = gc.get_freeze_count()
settle_garbage_collector()
print(before, gc.get_freeze_count(), gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD)
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    # In a process of its own: the test run's collector is left as it is.
    answer = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, threshold_set = int(answer[0]), int(answer[1]), answer[2]
    assert before == 0
    assert after > 1_000  # modules, classes and functions: what start-up leaves for good
    assert threshold_set == "True"
