"""Gateway benchmark: proxied GET throughput and latency against the same upstream, direct.

Prints figures, never pass/fail. Everything runs on 127.0.0.1:
- an upstream under uvicorn, one worker, answering ``GET`` with a small JSON body: a FastAPI
  route (``--upstream fastapi``, the default, as in the issue's reference figures) or a bare
  ASGI function (``--upstream minimal``: the upstream costs least, so the proxy's share of
  the time is largest);
- the gateway: ``python -m gateway``, one worker, routing ``/api/v1/products`` to it, with
  its rate limiter on the local Redis, a development key made for the run;
- a load generator in its own process (aiohttp, N keep-alive connections, fixed duration).

Rows: direct upstream; candidate proxy designs with nothing but the forwarding (``--designs``:
pure ASGI on the gateway's HTTP/1.1 pool, the gateway's design and so its floor; pure ASGI
on an aiohttp session, the design before it; pure ASGI on httpx; a FastAPI catch-all route
streaming through httpx); gateway with a bearer token (verified,
rate-limited per user); gateway anonymous (rate-limited per address); nginx in front of the
upstream when installed. Each row runs ``--rounds`` times; medians.
``--baseline DIR`` runs a second gateway from another checkout (a git worktree of an
earlier commit, say) beside this one, measured in the same rounds as rows of its own: on a
machine whose speed drifts within minutes, the fair comparison of a change.
"server CPU us/req" is the CPU time the serving process (upstream or gateway) spent per
request: on a small machine the load generator, gateway, upstream and Redis share the
cores, so throughput understates the gateway and the CPU figure is the one to compare.

``python -m bench.gateway [--seconds 5] [--connections 64] [--rounds 3] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bench.shop.references import nginx_available, nginx_in_front_of, wait_listening
from bench.tokens import sample_token
from shared.auth import ensure_development_keys
from shared.testing.ports import free_port

PATH = "/api/v1/products/SKU-1"
BODY = json.dumps({"sku": "SKU-1", "name": "Widget", "available": 3}).encode()


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"52")],
        }
    )
    await send({"type": "http.response.body", "body": BODY.ljust(52)})


def fastapi_upstream() -> Any:
    """The upstream of the issue's reference figures: a FastAPI route answering small JSON."""
    app = FastAPI()

    @app.get("/api/v1/products/{sku}")
    async def product(sku: str) -> dict[str, object]:
        return {"sku": sku, "name": "Widget", "available": 3}

    return app


UPSTREAMS: dict[str, Callable[[], Any]] = {
    "fastapi": fastapi_upstream,
    "minimal": lambda: upstream_app,
}


def bare_http1_proxy(upstream: str) -> Any:
    """The floor of the gateway's design: a pure-ASGI app forwarding to ``upstream`` on the
    gateway's own HTTP/1.1 pool (``gateway.proxy.http1``), answering with the buffered body.
    No auth, limits, ids, metrics, CORS or gzip: what the gateway costs on top of a Python
    proxy is its row minus this."""
    from gateway.proxy.http1 import Http1Pool, Origin

    origin = Origin.parse(upstream)
    pool: Http1Pool | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal pool
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    pool = Http1Pool(
                        limit=256,
                        keepalive_seconds=4.0,
                        connect_timeout=2.0,
                        read_timeout=15.0,
                        total_timeout=30.0,
                    )
                    await send({"type": "lifespan.startup.complete"})
            if pool is not None:
                await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert pool is not None
        response = await pool.request(origin, "GET", scope["raw_path"], [], b"")
        try:
            body = await response.read()
        finally:
            response.release()
        headers = [(k.lower(), v) for k, v in response.headers if k.lower() != b"date"]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def bare_proxy(upstream: str) -> Any:
    """A candidate design, the gateway's until 2026-12-01: the same pure-ASGI forwarding on
    one pooled aiohttp session, answering with the buffered body."""
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(auto_decompress=False)
                    await send({"type": "lifespan.startup.complete"})
            if session is not None:
                await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert session is not None
        async with session.get(upstream + scope["raw_path"].decode("latin-1")) as response:
            body = await response.read()
            headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() != b"date"]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def httpx_proxy(upstream: str) -> Any:
    """A candidate design: the same pure-ASGI forwarding on one pooled httpx client."""
    import httpx

    client: httpx.AsyncClient | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal client
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
                    client = httpx.AsyncClient(limits=limits)
                    await send({"type": "lifespan.startup.complete"})
            if client is not None:
                await client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert client is not None
        response = await client.get(upstream + scope["raw_path"].decode("latin-1"))
        headers = [(k.lower(), v) for k, v in response.headers.raw if k.lower() != b"date"]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": response.content})

    return app


def fastapi_httpx_route(upstream: str) -> Any:
    """A candidate design: a FastAPI catch-all route streaming through httpx."""
    import httpx

    app = FastAPI()
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))

    @app.get("/{path:path}")
    async def forward(path: str, request: Request) -> StreamingResponse:
        upstream_request = client.build_request("GET", f"{upstream}/{path}")
        response = await client.send(upstream_request, stream=True)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return StreamingResponse(body(), status_code=response.status_code)

    return app


# Proxy designs measured beside the gateway, each in its own uvicorn process (on uvloop and
# httptools, as every process of the platform, unless SERVER_OPTIONS says otherwise).
PROXIES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "http1": ("bare http1 pool proxy", bare_http1_proxy),
    "http1-stdlib": ("bare http1 pool, asyncio+h11", bare_http1_proxy),
    "aiohttp": ("bare aiohttp proxy", bare_proxy),
    "httpx": ("bare httpx proxy", httpx_proxy),
    "fastapi-httpx": ("FastAPI route + httpx", fastapi_httpx_route),
}


SERVER_OPTIONS: dict[str, dict[str, str]] = {
    # The gateway's floor on the standard library's loop and uvicorn's pure-Python parser:
    # what uvloop and httptools buy.
    "http1-stdlib": {"loop": "asyncio", "http": "h11"},
}

# Gateways configured otherwise, measured with a token beside the gateway as shipped
# (``--variants``): what the token cache and the pool size buy.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "no-token-cache": ("no token cache", {"COMMERCE_JWT_VERIFIED_CACHE_SIZE": "0"}),
    "pool-16": ("pool of 16 connections", {"GATEWAY_UPSTREAM_POOL_SIZE": "16"}),
    # Tracing on with nothing sampled: what the spans' machinery costs a request that no
    # trace records (nothing is exported, so the endpoint is never called).
    "traced-unsampled": (
        "tracing, none sampled",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0",
        },
    ),
}


async def _load(url: str, headers: dict[str, str], connections: int, seconds: float) -> Any:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if record:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        warmup = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(warmup, False) for _ in range(connections)))
        started = time.perf_counter()
        end = started + seconds
        await asyncio.gather(*(worker(end, True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def _load_process(args: tuple[str, dict[str, str], int, float], queue: Any) -> None:
    rate, latencies, errors = asyncio.run(_load(*args))
    latencies.sort()
    queue.put(
        (
            rate,
            latencies[len(latencies) // 2] if latencies else float("nan"),
            latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
            errors,
        )
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, headers: dict[str, str], connections: int, seconds: float, server_pid: int | None
) -> Any:
    """(req/s, p50 s, p99 s, errors, server CPU s per request) of one timed run.

    The CPU figure is NaN where the serving process is not ours to read (nginx's worker).
    """
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_load_process, args=((url, headers, connections, seconds), queue)
    )
    process.start()
    rate, p50, p99, errors = queue.get(timeout=seconds + 60)
    process.join()
    # Warm-up requests are counted in the CPU time too: one second at about the same rate.
    requests = rate * (seconds + 1.0)
    if not server_pid:
        return rate, p50, p99, errors, float("nan")
    return rate, p50, p99, errors, (cpu_seconds(server_pid) - cpu_before) / max(requests, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--upstream",
        choices=sorted(UPSTREAMS),
        default="fastapi",
        help="fastapi: a FastAPI route, as in the reference figures (default); "
        "minimal: a bare ASGI function, the hardest case for the gateway's share",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"gateways configured otherwise, measured with a token: {','.join(VARIANTS)}",
    )
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--designs",
        default=",".join(PROXIES),
        help=f"proxy designs measured beside the gateway, comma-separated: {','.join(PROXIES)}",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the repository (e.g. a git worktree of an earlier commit) whose "
        "gateway is measured beside this one, in the same rounds",
    )
    parser.add_argument("--serve-proxy", choices=sorted(PROXIES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--proxied", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_upstream or options.serve_proxy:
        server = {"loop": "uvloop", "http": "httptools"} | SERVER_OPTIONS.get(
            options.serve_proxy or "", {}
        )
        uvicorn.run(
            PROXIES[options.serve_proxy][1](options.proxied)
            if options.serve_proxy
            else UPSTREAMS[options.upstream](),
            host="127.0.0.1",
            port=options.serve_upstream or options.port,
            loop=server["loop"],
            http=server["http"],
            access_log=False,
            log_level="warning",
        )
        return

    key_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-keys-"))
    private_pem, public_pem = ensure_development_keys(key_dir)
    upstream_port, gateway_port = free_port(), free_port()
    designs = [name for name in options.designs.split(",") if name]
    design_ports = {name: free_port() for name in designs}
    env = {
        **os.environ,
        # The development key and database settings; no probe port (several gateways run).
        "COMMERCE_ENVIRONMENT": "development",
        "GATEWAY_INTERNAL_PORT": "0",
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_ROUTES": json.dumps({"/api/v1/products": f"http://127.0.0.1:{upstream_port}"}),
        "GATEWAY_JWT_DEV_KEY_DIR": str(key_dir),
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_RATE_LIMIT_API": "1000000/second",
        "COMMERCE_BROKER_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
    }
    upstream_command = [
        sys.executable,
        "-m",
        "bench.gateway",
        "--serve-upstream",
        str(upstream_port),
        "--upstream",
        options.upstream,
    ]
    processes = {
        "upstream": subprocess.Popen(upstream_command),  # noqa: S603
        "gateway": subprocess.Popen([sys.executable, "-m", "gateway"], env=env),
    }
    if options.baseline:
        baseline = options.baseline.resolve()
        design_ports["baseline"] = free_port()
        # Its own packages ahead of this checkout's (installed as editable paths).
        sources = [baseline / "gateway" / "src", baseline / "libs" / "shared" / "src"]
        baseline_env = env | {
            "GATEWAY_PORT": str(design_ports["baseline"]),
            "PYTHONPATH": os.pathsep.join(str(source) for source in sources),
        }
        processes["baseline"] = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=baseline_env, cwd=baseline
        )
    variants = [name for name in options.variants.split(",") if name]
    for name in variants:
        design_ports[f"variant:{name}"] = free_port()
        variant_env = (
            env | VARIANTS[name][1] | {"GATEWAY_PORT": str(design_ports[f"variant:{name}"])}
        )
        processes[f"variant:{name}"] = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=variant_env
        )
    for name, port in design_ports.items():
        if name == "baseline" or name.startswith("variant:"):
            continue
        proxied = f"http://127.0.0.1:{upstream_port}"
        command = [*upstream_command[:3], "--serve-proxy", name, "--port", str(port)]
        processes[name] = subprocess.Popen([*command, "--proxied", proxied])  # noqa: S603
    with contextlib.ExitStack() as stack:
        try:
            ports = {"upstream": upstream_port, "gateway": gateway_port, **design_ports}
            for port in ports.values():
                wait_listening(port)
            nginx = (
                stack.enter_context(nginx_in_front_of(f"127.0.0.1:{upstream_port}"))
                if nginx_available()
                else None
            )
            run_rows(options, ports, nginx, private_pem, public_pem, processes)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(timeout=30)


def run_rows(
    options: argparse.Namespace,
    ports: dict[str, int],
    nginx: str | None,
    private_pem: str,
    public_pem: str,
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    """Measure every row in rounds and print the medians."""
    token = sample_token(private_pem, public_pem)
    upstream_pid, gateway_pid = processes["upstream"].pid, processes["gateway"].pid
    upstream_port, gateway_port = ports["upstream"], ports["gateway"]
    rows: dict[str, tuple[str, dict[str, str], int | None]] = {
        "direct upstream": (f"http://127.0.0.1:{upstream_port}{PATH}", {}, upstream_pid),
    }
    for name, (label, _) in PROXIES.items():
        if name in ports:
            rows[label] = (f"http://127.0.0.1:{ports[name]}{PATH}", {}, processes[name].pid)
    rows |= {
        "gateway, bearer token": (
            f"http://127.0.0.1:{gateway_port}{PATH}",
            {"Authorization": f"Bearer {token}"},
            gateway_pid,
        ),
        "gateway, anonymous": (f"http://127.0.0.1:{gateway_port}{PATH}", {}, gateway_pid),
    }
    if "baseline" in ports:
        baseline_url, baseline_pid = (
            f"http://127.0.0.1:{ports['baseline']}{PATH}",
            processes["baseline"].pid,
        )
        rows["baseline, bearer token"] = (
            baseline_url,
            {"Authorization": f"Bearer {token}"},
            baseline_pid,
        )
        rows["baseline, anonymous"] = (baseline_url, {}, baseline_pid)
    for name, (label, _) in VARIANTS.items():
        if f"variant:{name}" in ports:
            rows[f"gateway, bearer, {label}"] = (
                f"http://127.0.0.1:{ports[f'variant:{name}']}{PATH}",
                {"Authorization": f"Bearer {token}"},
                processes[f"variant:{name}"].pid,
            )
    if nginx:
        rows["nginx (reference)"] = (f"{nginx}{PATH}", {}, None)
    results: dict[str, list[Any]] = {name: [] for name in rows}
    for _ in range(options.rounds):
        for name, (url, headers, pid) in rows.items():
            results[name].append(measure(url, headers, options.connections, options.seconds, pid))
    print(
        f"GET {PATH} ({options.upstream} upstream), {options.connections} connections, "
        f"{options.seconds:g} s x {options.rounds} rounds (medians), {os.cpu_count()} CPUs"
    )
    print(
        f"{'row':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'server CPU us/req':>18}"
    )
    direct_rate = statistics.median(r[0] for r in results["direct upstream"])
    nginx_rate = statistics.median(r[0] for r in results["nginx (reference)"]) if nginx else None
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs) * 1000
        p99 = statistics.median(r[2] for r in runs) * 1000
        errors = sum(r[3] for r in runs)
        cpu = statistics.median(r[4] for r in runs) * 1e6
        share = f"  ({rate / direct_rate:.0%} of direct" if name != "direct upstream" else ""
        if share and nginx_rate and not name.startswith(("direct", "nginx")):
            share += f", {rate / nginx_rate:.0%} of nginx"
        share += ")" if share else ""
        print(f"{name:40} {rate:8.0f} {p50:8.2f} {p99:8.2f} {errors:7d} {cpu:18.0f}{share}")


if __name__ == "__main__":
    main()
