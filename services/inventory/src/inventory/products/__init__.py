"""The product row that the catalog, stock and media build on: its table and sku format, its
lookup by sku, the 404 of a sku that names no product, and the mark that a transaction
changed one."""
