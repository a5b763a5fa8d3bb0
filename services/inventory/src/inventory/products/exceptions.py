"""What every part of inventory answers for a sku that names no product, as problem+json."""

from shared.errors import DomainError


class ProductNotFound(DomainError):
    status = 404
    title = "Product not found"
    type = "/problems/product-not-found"

    def __init__(self, sku: str) -> None:
        super().__init__(f"No product has the sku {sku}.")
