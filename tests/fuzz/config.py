"""A Schemathesis configuration that points part of the generated input at real data.

Random ids answer 404 and random skus 422, so most generated calls would never reach the
services' logic. Dictionaries of real skus, orders and payments (and the store currency,
real countries, the fake provider's cards) are mixed into generation with a probability,
so both the real paths and the refusals are exercised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealData:
    skus: list[str]
    order_ids: list[str]
    payment_ids: list[str]


BINDINGS = {
    "path.sku": ("skus", 0.7),
    "path.order_id": ("order_ids", 0.7),
    "path.payment_id": ("payment_ids", 0.7),
    "query.order_id": ("order_ids", 0.5),
    "body.items[*].sku": ("skus", 0.7),
    "body.price.currency": ("currencies", 0.8),
    "body.shipping_address.country": ("countries", 0.8),
    "body.payment.token": ("cards", 0.8),
}


def _toml_list(values: list[str]) -> str:
    return json.dumps(values)  # a JSON array of strings is a TOML array


def write_config(path: Path, data: RealData) -> Path:
    dictionaries = {
        "skus": data.skus,
        "order_ids": data.order_ids,
        "payment_ids": data.payment_ids,
        "currencies": ["USD"],
        "countries": ["US", "GB", "DE", "JP"],
        "cards": ["tok_visa", "tok_mastercard", "tok_chargeDeclined", "tok_insufficientFunds"],
    }
    lines = ["[phases.stateful]", "max-steps = 8", ""]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml_list(values)}", ""]
    lines.append("[parameters]")
    for key, (dictionary, probability) in BINDINGS.items():
        lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = {probability} }}')
    path.write_text("\n".join(lines) + "\n")
    return path
