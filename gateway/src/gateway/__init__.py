"""The only public entry: identity, JWT, routing, rate limits."""
