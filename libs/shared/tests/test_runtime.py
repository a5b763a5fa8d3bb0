from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from shared.runtime import settle_garbage_collector
before = gc.get_freeze_count()
settle_garbage_collector()
print(before, gc.get_freeze_count(), gc.get_threshold() == (700, 10, 10))
"""


def test_start_up_objects_are_frozen_and_the_thresholds_left_as_they_are() -> None:
    # In a process of its own: the test run's collector is left as it is.
    answer = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, threshold_set = int(answer[0]), int(answer[1]), answer[2]
    assert before == 0
    assert after > 1_000  # modules, classes and functions: what start-up leaves for good
    assert threshold_set == "True"
