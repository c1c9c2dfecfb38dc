"""Shared pieces of the benchmarks: start a real `medicus serve` process, and drive it with N
concurrent keep-alive clients for a bounded time and number of requests.

The load comes from aiohttp, whose client costs a fraction of httpx's per request, so that on a
2-core machine the measurement is dominated by the server rather than by the client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import httpx

if TYPE_CHECKING:
    from medicus.platform import Platform


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def as_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
        }


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(environment: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """A `medicus serve` process on a free loopback port with its own data dir; yields its URL
    and the data dir (so that the benchmark can prepare data through the same database)."""
    with tempfile.TemporaryDirectory(prefix="medicus-bench-") as data_dir:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDICUS_")}
        env.update({"MEDICUS_DATA_DIR": data_dir, "MEDICUS_LOG_LEVEL": "WARNING"})
        env.update(environment or {})
        process = subprocess.Popen(
            [sys.executable, "-m", "medicus", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(data_dir),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            yield url, data_dir
        finally:
            process.terminate()
            process.wait(30)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the medicus at `url` answers `/readyz`; fail early if `process` exited."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("medicus serve exited before it was ready")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("medicus serve was not ready within 60 s")


Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]
"""Sends request number N with the session and returns the response's status."""


async def healthz(client: aiohttp.ClientSession, _number: int) -> int:
    """`GET /healthz`: the baseline every benchmark measures its requests against."""
    async with client.get("/healthz") as response:
        await response.read()
        return response.status


async def drive(
    base_url: str,
    request: Request,
    concurrency: int = 16,
    seconds: float = 5.0,
    max_requests: int = 200_000,
    warmup_seconds: float = 1.0,
) -> LoadResult:
    """Run `request` from `concurrency` clients until `seconds` pass or `max_requests` are done."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as client:
        await _run(client, request, concurrency, warmup_seconds, max_requests, [], [0])
        latencies: list[float] = []
        errors = [0]
        began = time.perf_counter()
        await _run(client, request, concurrency, seconds, max_requests, latencies, errors)
        elapsed = time.perf_counter() - began
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        errors=errors[0],
        seconds=elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p95_ms=latencies[int(len(latencies) * 0.95) - 1] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
    )


async def _run(
    client: aiohttp.ClientSession,
    request: Request,
    concurrency: int,
    seconds: float,
    max_requests: int,
    latencies: list[float],
    errors: list[int],
) -> None:
    deadline = time.perf_counter() + seconds
    issued = iter(range(max_requests))

    async def worker() -> None:
        for number in issued:
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            status = await request(client, number)
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors[0] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def demo_token(platform: Platform, email: str, scope: str) -> str:
    """An access token of the demo user `email` (in their first organisation) with `scope`,
    issued by `platform` (built on the benchmarked server's data dir, demo data loaded)."""
    from medicus.iam import repository
    from medicus.iam.tokens import TokenGrant

    async with platform.database.snapshot() as session:
        user = await repository.user_by_email(session, email)
        assert user is not None
        (membership, organisation), *_ = await repository.memberships_of(session, user.id)
    grant = TokenGrant(
        user.id,
        "user",
        organisation.id,
        membership.role,
        "benchmark",
        scope,
        f"{platform.settings.public_url}/fhir/x",
    )
    return await platform.tokens.issue_access_token(grant)
