"""Percentiles and the shape every scenario's figures take."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Figures:
    """One row of the report: a rate and a latency distribution (ms)."""

    scenario: str
    rate: float  # per second: requests, transactions or confirmed orders
    unit: str
    p50: float = float("nan")
    p95: float = float("nan")
    p99: float = float("nan")
    errors: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, scenario: str, rate: float, unit: str, latencies: list[float], **kw: Any
    ) -> Figures:
        return cls(
            scenario,
            rate,
            unit,
            percentile(latencies, 0.50),
            percentile(latencies, 0.95),
            percentile(latencies, 0.99),
            **kw,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failures_note(result: dict[str, Any]) -> str:
    """What a load run's errors were, for the report's note: ``; errors: 504 x13``."""
    failures: dict[str, int] = result.get("failures") or {}
    if not failures:
        return ""
    kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(failures.items()))
    return f"; errors: {kinds}"
