"""Shared building blocks of the commerce platform: settings, database, errors, ASGI
middleware, logging, metrics and health. Nothing in here knows about a domain."""
