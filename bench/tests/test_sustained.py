"""The benchmark's search for the rate the saga sustains (orders.py): the next rate
to try, what counts as keeping pace, the row it reports, and the warm-up before it. No load
is sent here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.shop import orders
from bench.shop.__main__ import targets
from bench.shop.orders import (
    KEEPS_PACE_P99_MS,
    OrderFigures,
    Probe,
    confirmation_rate,
    keeps_pace,
    next_rate,
    quarter_medians,
    sustained_row,
)
from bench.shop.stats import Figures


def _figures(*, p99: float, unconfirmed: int = 0, post_errors: int = 0) -> OrderFigures:
    post = Figures("POST /orders (x)", 200.0, "req/s", 10.0, 20.0, 30.0, errors=post_errors)
    saga = Figures(
        "placed→confirmed (x)", 195.0, "confirmed/s", 300.0, 500.0, p99, errors=unconfirmed
    )
    return OrderFigures(post, saga)


def test_the_search_steps_up_from_a_kept_rate_and_down_from_a_missed_one() -> None:
    assert next_rate(kept=200, missed=None) == 230
    assert next_rate(kept=None, missed=230) == 200


def test_the_search_halves_the_gap_and_stops_once_it_is_small() -> None:
    assert next_rate(kept=200, missed=230) == 215
    assert next_rate(kept=200, missed=206) is None  # 3% of 200


def test_keeping_pace_means_every_order_confirmed_within_the_bound() -> None:
    assert keeps_pace(_figures(p99=KEEPS_PACE_P99_MS))
    assert not keeps_pace(_figures(p99=KEEPS_PACE_P99_MS + 1))
    assert not keeps_pace(_figures(p99=100.0, unconfirmed=1))
    assert not keeps_pace(_figures(p99=100.0, post_errors=1))


def test_the_row_is_the_highest_rate_kept_and_names_every_probe() -> None:
    tried = [
        Probe(180, _figures(p99=400.0), True, {"orders": 1.0}),
        Probe(207, _figures(p99=4000.0), False, {"orders": 1.1}),
        Probe(194, _figures(p99=700.0), True, {"orders": 1.2}),
    ]
    row = sustained_row(tried)
    assert row is not None
    assert row.scenario == "placed→confirmed (sustained)"
    assert row.p99 == 700.0
    assert row.extra["offered"] == 194
    assert row.extra["cpu_ms_per_order"] == {"orders": 1.2}
    assert "180 kept, 207 behind, 194 kept" in row.note


def test_the_row_names_the_cores_speed_before_each_probe_when_it_was_read() -> None:
    tried = [
        Probe(180, _figures(p99=400.0), True, {}, loop_speed=41.2),
        Probe(207, _figures(p99=4000.0), False, {}, loop_speed=29.5),
    ]
    row = sustained_row(tried)
    assert row is not None
    assert "probes 180 kept at 41.2, 207 behind at 29.5 (each at the loop's" in row.note


def test_no_row_when_no_rate_was_kept() -> None:
    assert sustained_row([Probe(180, _figures(p99=4000.0), False, {})]) is None


def test_quarter_medians_follow_placement_order() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    # Placed one per second; each waits a second longer than the one before it.
    confirmed = [
        (start + timedelta(seconds=i), start + timedelta(seconds=2 * i + 1)) for i in range(8)
    ]
    assert quarter_medians(list(reversed(confirmed))) == [2000.0, 4000.0, 6000.0, 8000.0]
    assert quarter_medians(confirmed[:3]) == []


def test_the_confirmed_rate_is_the_confirmations_own_from_first_to_last() -> None:
    start = datetime(2026, 12, 5, tzinfo=UTC)
    # 101 orders placed 10 ms apart, each confirmed 300 ms later: a steady 100/s, which the
    # first placement to the last confirmation (1.3 s for 101) would read as 77.7/s.
    steady = [
        (start + timedelta(milliseconds=10 * i), start + timedelta(milliseconds=10 * i + 300))
        for i in range(101)
    ]
    assert confirmation_rate(steady) == 100.0
    # The same orders confirmed while a backlog grows, each 10 ms later than the one
    # before it: the confirmations come at 50/s, and so does the figure.
    behind = [
        (placed, done + (done - start) - timedelta(milliseconds=300)) for placed, done in steady
    ]
    assert round(confirmation_rate(behind), 6) == 50.0
    assert confirmation_rate(steady[:1]) == 0.0


def test_the_confirmed_rate_is_never_above_the_rate_orders_were_placed() -> None:
    start = datetime(2026, 12, 5, tzinfo=UTC)
    # 101 orders placed 10 ms apart (100/s); the first twenty wait for one batch at 500 ms,
    # every later one 300 ms: the confirmations span 0.8 s, 125/s, which the saga cannot
    # have done.
    bunched = [
        (
            start + timedelta(milliseconds=10 * i),
            start + timedelta(milliseconds=max(10 * i + 300, 500)),
        )
        for i in range(101)
    ]
    assert confirmation_rate(bunched) == 100.0


async def test_the_warm_up_places_its_orders_at_a_fixed_rate_and_says_how_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, object]] = []

    async def place_orders(db: object, label: str, **kwargs: object) -> OrderFigures:
        calls.append({"label": label, **kwargs})
        figures = _figures(p99=100.0)
        return replace(figures, saga=replace(figures.saga, extra={"orders": 1998}))

    monkeypatch.setattr(orders, "place_orders", place_orders)
    placed = await orders.warm_up(None, count=2000, base="http://gateway", skus=["A"])
    assert placed == 1998
    assert calls == [
        {
            "label": "warm-up",
            "seconds": 2000 / orders.WARM_UP_RATE,
            "rate": orders.WARM_UP_RATE,
            "base": "http://gateway",
            "skus": ["A"],
        }
    ]


def _row(scenario: str, rate: float) -> Figures:
    return Figures(scenario, rate, "confirmed/s", 100.0, 200.0, 300.0)


def test_the_sustained_target_is_judged_on_the_search_alone() -> None:
    burst = _row("placed→confirmed (saturation)", 400.0)
    [found] = targets([burst, _row("placed→confirmed (sustained)", 240.0)], {}, 125.0)
    assert (found.measured, found.met) == ("240/s", False)
    # A search in which no rate kept pace is a miss, whatever the burst worked off.
    [missed] = targets([burst], {}, 125.0)
    assert (missed.measured, missed.met) == ("no rate kept pace with", False)
    # No search, no sustained target (as any scenario not run).
    assert targets([burst], {}, 125.0, searched=False) == []
