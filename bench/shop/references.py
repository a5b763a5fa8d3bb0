"""Reference points measured in the same run: pgbench (the database) and nginx (a proxy).

- pgbench runs a script equal to the reservation transaction (lock the stock row, raise
  ``reserved``, write the reservation, its line and the ledger row) on a scratch database
  created and dropped here;
- nginx (when installed) proxies to the same inventory process the gateway forwards to,
  from a generated config on a free 127.0.0.1 port; never a system-wide config.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.testing.ports import free_port

PGBENCH = shutil.which("pgbench") or "/usr/bin/pgbench"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

SCHEMA_SQL = """
CREATE TABLE stock_items (sku text PRIMARY KEY, on_hand int NOT NULL, reserved int NOT NULL,
    CHECK (0 <= reserved AND reserved <= on_hand));
CREATE TABLE reservations (order_id uuid PRIMARY KEY, status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE reservation_lines (order_id uuid REFERENCES reservations, sku text,
    quantity int NOT NULL, PRIMARY KEY (order_id, sku));
CREATE TABLE stock_movements (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku text NOT NULL, kind text NOT NULL, on_hand_delta int NOT NULL,
    reserved_delta int NOT NULL, reference text, at timestamptz NOT NULL DEFAULT now());
INSERT INTO stock_items SELECT 'SKU-' || n, 1000000000, 0 FROM generate_series(1, 8) n;
"""

RESERVATION_SCRIPT = r"""
\set n random(1, 8)
BEGIN;
SELECT on_hand, reserved FROM stock_items WHERE sku = 'SKU-' || :n FOR UPDATE;
UPDATE stock_items SET reserved = reserved + 1 WHERE sku = 'SKU-' || :n;
INSERT INTO reservations (order_id, status) VALUES (gen_random_uuid(), 'reserved')
    RETURNING order_id \gset
INSERT INTO reservation_lines VALUES (:order_id, 'SKU-' || :n, 1);
INSERT INTO stock_movements (sku, kind, on_hand_delta, reserved_delta, reference)
    VALUES ('SKU-' || :n, 'reservation', 0, 1, :order_id);
END;
"""


def _psql(database: str, sql: str) -> None:
    subprocess.run(  # noqa: S603 (fixed argv)
        [  # noqa: S607 (psql from PATH)
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def pgbench_reservations(*, clients: int, seconds: int) -> float:
    """Reservation transactions per second by pgbench on a scratch database."""
    database = f"commerce_pgbench_{int(time.time())}"
    _psql("postgres", f'CREATE DATABASE "{database}"')
    try:
        _psql(database, SCHEMA_SQL)
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
            script.write(RESERVATION_SCRIPT)
            script.flush()
            result = subprocess.run(  # noqa: S603 (fixed argv)
                [
                    PGBENCH,
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-n",
                    "-M",
                    "prepared",
                    "-c",
                    str(clients),
                    "-j",
                    "2",
                    "-T",
                    str(seconds),
                    "-f",
                    script.name,
                    database,
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=seconds + 60,
            )
        match = re.search(r"tps = ([\d.]+)", result.stdout)
        return float(match.group(1)) if match else float("nan")
    finally:
        _psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream shop {{ server {upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def nginx_available() -> bool:
    return Path(NGINX).exists()


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[str]:
    """nginx (one worker, like the gateway's one process) proxying to ``upstream``
    (``host:port``); yields its origin. Stopped and its files removed after."""
    root = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, upstream=upstream, port=port))
    process = subprocess.Popen([NGINX, "-p", str(root), "-c", str(conf)])  # noqa: S603 (fixed argv)
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def wait_listening(port: int, seconds: float = 20.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; raise after ``seconds``."""
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")
