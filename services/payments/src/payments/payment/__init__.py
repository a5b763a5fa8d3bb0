"""Payments: one per order, charged once through the provider, refunded in full at most once."""
