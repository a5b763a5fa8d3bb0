"""The mixed storefront journey, for Locust (headless): browse 70%, order 25%, account 5%.

Reads the customers' tokens and the skus from the JSON file named by ``BENCH_LOCUST_DATA``
(written by the benchmark); requests go to the gateway only.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from typing import Any

from locust import FastHttpUser, between, task

DATA: dict[str, Any] = json.loads(open(os.environ["BENCH_LOCUST_DATA"]).read())  # noqa: SIM115
TOKENS = itertools.cycle(DATA["tokens"])
ADDRESS = {
    "name": "Locust Buyer",
    "line1": "1 Swarm Street",
    "city": "Localhost",
    "postal_code": "12700",
    "country": "US",
}


class Shopper(FastHttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {next(TOKENS)}"}

    @task(70)
    def browse(self) -> None:
        self.client.get("/api/v1/products?limit=20", name="GET /products")
        sku = random.choice(DATA["skus"])  # noqa: S311 (load shape, not security)
        self.client.get(f"/api/v1/products/{sku}", name="GET /products/{sku}")

    @task(25)
    def order(self) -> None:
        body = {
            "items": [{"sku": random.choice(DATA["skus"]), "quantity": 1}],  # noqa: S311
            "payment": {"token": "tok_visa"},
            "shipping_address": ADDRESS,
        }
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/api/v1/orders", json=body, headers=headers, name="POST /orders", catch_response=True
        ) as reply:
            if reply.status_code != 202:
                reply.failure(f"status {reply.status_code}")
                return
            order_id = reply.json()["id"]
        self.client.get(f"/api/v1/orders/{order_id}", headers=self.auth, name="GET /orders/{id}")

    @task(5)
    def account(self) -> None:
        self.client.get("/api/v1/auth/me", headers=self.auth, name="GET /auth/me")
        self.client.get("/api/v1/orders?limit=10", headers=self.auth, name="GET /orders")
