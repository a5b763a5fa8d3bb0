"""Payments against a provider adapter, and refunds."""
