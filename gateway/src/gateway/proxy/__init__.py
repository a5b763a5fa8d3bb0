"""Forwarding requests to the services: the route table, the upstream client, the middleware."""
