"""The machine's description in a report: the cores' speed reference."""

from __future__ import annotations

from bench.shop.machine import python_speed


def test_the_loop_reference_is_iterations_per_second_of_the_best_repeat() -> None:
    # Three repeats of 1,000 iterations taking 0.5, 0.25 and 1.0 s (a fake clock, not a
    # timing): the best is 4,000 iterations/s.
    readings = iter([0.0, 0.5, 1.0, 1.25, 2.0, 3.0])
    assert python_speed(iterations=1000, repeats=3, clock=lambda: next(readings)) == 4000.0
