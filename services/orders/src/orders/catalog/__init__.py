"""The local price replica, fed by ``inventory.product_upserted``."""
