"""What stock operations refuse, as problem+json."""

from shared.errors import DomainError


class StockBelowReserved(DomainError):
    status = 409
    title = "Stock below reserved"
    type = "/problems/stock-below-reserved"

    def __init__(self, sku: str, on_hand: int, reserved: int, delta: int) -> None:
        super().__init__(
            f"Adjusting {sku} by {delta} would leave {on_hand + delta} on hand, "
            f"below the {reserved} reserved."
        )
