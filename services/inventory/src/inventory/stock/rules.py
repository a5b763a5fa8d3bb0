"""The stock rules, pure: whether an order can be reserved, whether a lapsed reservation can
be taken again, and the once-per-crossing low-stock alarm. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from inventory.stock.rows import LockedLine, StockLevel
from shared.contracts.inventory import StockLow


class FailureReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    INACTIVE = "inactive"
    # A confirmation met an expired reservation whose stock was sold meanwhile.
    STOCK_UNAVAILABLE = "stock_unavailable"


def shortfall(
    wanted: Mapping[str, int], locked: Sequence[StockLevel]
) -> tuple[FailureReason, list[str]] | None:
    """Why the order cannot be reserved, naming every offending sku; None if it can.

    An unknown sku outranks an inactive one, which outranks a shortage: the most permanent
    reason is the most useful to the customer.
    """
    by_sku = {row.sku: row for row in locked}
    unknown = sorted(sku for sku in wanted if sku not in by_sku)
    if unknown:
        return FailureReason.UNKNOWN_SKU, unknown
    inactive = sorted(sku for sku in wanted if not by_sku[sku].active)
    if inactive:
        return FailureReason.INACTIVE, inactive
    short = sorted(sku for sku, quantity in wanted.items() if by_sku[sku].available < quantity)
    if short:
        return FailureReason.OUT_OF_STOCK, short
    return None


def retake_shortfall(lines: Sequence[LockedLine]) -> list[str]:
    """The skus an expired reservation's (locked) lines cannot take again from available
    stock, in sku order; empty when every line can be committed again."""
    needed: Counter[str] = Counter()
    levels: dict[str, StockLevel] = {}
    for line in lines:
        needed[line.stock.sku] += line.quantity
        levels[line.stock.sku] = line.stock
    return sorted(sku for sku, quantity in needed.items() if levels[sku].available < quantity)


def low_stock_alarm(
    *, sku: str, available: int, reorder_point: int, alerted: bool
) -> tuple[bool, StockLow | None]:
    """The once-per-crossing rule for one row just changed: the alarm's new state, and the
    ``stock_low`` due now, if any.

    ``stock_low`` is due when available falls to or under the reorder point while the alarm
    is not raised; the alarm is re-armed when available climbs back above it, so a run of
    sales past the point says so once.
    """
    low = available <= reorder_point
    if low and not alerted:
        return True, StockLow(sku=sku, available=available, reorder_point=reorder_point)
    return low, None


def low_stock_events(levels: Iterable[StockLevel]) -> list[StockLow]:
    """``low_stock_alarm`` on rows just changed (in place, still locked): their alarms' new
    state is set on them for the write, and the events due are returned, in sku order."""
    events = []
    for level in sorted(levels, key=lambda level: level.sku):
        level.low_stock_alerted, event = low_stock_alarm(
            sku=level.sku,
            available=level.available,
            reorder_point=level.reorder_point,
            alerted=level.low_stock_alerted,
        )
        if event is not None:
            events.append(event)
    return events
