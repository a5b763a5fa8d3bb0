"""The garbage collector of a long-running process, set for a service's allocation pattern.

Every request and every event allocates thousands of short-lived objects, and CPython's
cyclic collector runs a young collection every 700 net allocations and a full one every
hundred of those. A full collection walks every tracked object, including the hundred
thousand or so that start-up leaves behind for good (modules, classes, functions, the
caches of pydantic and SQLAlchemy), a visible share of a busy worker's CPU.
``settle_garbage_collector`` moves what start-up left to the permanent generation
(``gc.freeze``), so collections walk only what the work allocates.

The thresholds stay CPython's: a larger young generation makes the collector's passes rarer
but longer, and longer passes land in the saga's latency tail (bench/CHANGES.md).
"""

from __future__ import annotations

import gc


def settle_garbage_collector() -> None:
    """Freeze what start-up left alive; call once the process has imported and built what
    it keeps (an app's lifespan, a worker before its loop)."""
    gc.collect()  # start-up's own garbage goes first, not into the permanent generation
    gc.freeze()
