"""What the catalog refuses, as problem+json."""

from shared.errors import DomainError


class ProductNotFound(DomainError):
    status = 404
    title = "Product not found"
    type = "/problems/product-not-found"

    def __init__(self, sku: str) -> None:
        super().__init__(f"No product has the sku {sku}.")


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

    def __init__(self, given: str, store: str) -> None:
        super().__init__(f"Prices must be in the store currency {store}, not {given}.")
