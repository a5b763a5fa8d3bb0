"""What the catalog refuses, as problem+json (an unknown sku: ``inventory.products``)."""

from shared.errors import DomainError


class SkuTaken(DomainError):
    status = 409
    title = "SKU already exists"
    type = "/problems/sku-taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"A product with the sku {sku} already exists.")


class WrongCurrency(DomainError):
    status = 422
    title = "Wrong currency"
    type = "/problems/wrong-currency"
    loc = ("body", "price", "currency")  # where POST and PATCH /products both carry it

    def __init__(self, given: str, store: str) -> None:
        super().__init__(f"Prices must be in the store currency {store}, not {given}.")
