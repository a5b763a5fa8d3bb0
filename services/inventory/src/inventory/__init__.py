"""Catalog and stock: products, prices, on hand, reservations, movements."""
