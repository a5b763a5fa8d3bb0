"""The machine's description in a report: the cores' speed reference."""

from __future__ import annotations

from bench.shop.machine import python_speed


def test_the_loop_reference_is_a_rate_that_falls_as_the_loop_grows_slower() -> None:
    # Same loop, a tenth of the work per call: the rate (per second) stays comparable,
    # while a rate computed from the wrong count would be ten times off.
    small = python_speed(iterations=20_000, repeats=3)
    large = python_speed(iterations=200_000, repeats=3)
    assert small > 0
    assert large > 0
    assert 0.2 < small / large < 5
