"""What the orders domain refuses, each answered as problem+json by the shared handlers."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import DomainError, FieldError


class OrderNotFound(DomainError):
    # Also the answer for another user's order: its existence is not disclosed.
    status = 404
    title = "Order not found"
    type = "/problems/order-not-found"


class IllegalTransition(DomainError):
    status = 409
    title = "Illegal transition"
    type = "/problems/illegal-transition"


class IdempotencyKeyMissing(DomainError):
    status = 400
    title = "Idempotency-Key required"
    type = "/problems/idempotency-key-missing"


class IdempotencyKeyInvalid(DomainError):
    status = 400
    title = "Invalid Idempotency-Key"
    type = "/problems/idempotency-key-invalid"


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency-Key reused"
    type = "/problems/idempotency-key-reused"
    loc = ("header", "Idempotency-Key")


class IdempotencyKeyInFlight(DomainError):
    status = 409
    title = "Request in progress"
    type = "/problems/idempotency-key-in-flight"


@dataclass(frozen=True)
class UnavailableLine:
    """A line of the request whose sku cannot be sold, and why."""

    index: int
    sku: str
    reason: str


class ProductsUnavailable(DomainError):
    """Some lines name a sku the catalog does not sell (unknown, inactive, other currency)."""

    status = 422
    title = "Products unavailable"
    type = "/problems/products-unavailable"

    def __init__(self, lines: list[UnavailableLine]) -> None:
        described = "; ".join(f"items[{line.index}] ({line.sku}): {line.reason}" for line in lines)
        super().__init__(
            f"Some lines cannot be ordered: {described}.",
            errors=[
                FieldError(
                    loc=["body", "items", line.index, "sku"], msg=line.reason, type=self.type
                )
                for line in lines
            ],
        )
