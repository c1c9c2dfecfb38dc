"""Whether one large write stalls everybody else: `/healthz` latency of a real `medicus serve`
while clients write the largest resources the hub accepts, next to `/healthz` alone on the same
server. Prints JSON.

The writes are Patients of ~30 MB (30 given names of ~990 KB each, just under FHIR's 1 MB
limit for a string; the body under the 32 MiB limit) and DocumentReferences with ~24 MB of
base64 data in an Attachment; `--writers` clients send them in turn, back to back.

    python -m benchmarks.healthz_under_large_writes [--seconds 20] [--writers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time
from typing import Any

import aiohttp
import orjson

from benchmarks.fhir import _token
from benchmarks.harness import drive, healthz, running_server

STRING_CHARACTERS = 900_000  # ~990 KB in UTF-8: FHIR R4 allows a string 1 MB
NAMES = 30
ATTACHMENT_BYTES = 18 * 1024 * 1024  # ~24 MB once base64-encoded


def large_patient() -> bytes:
    """A Patient of ~30 MB of names with accents, which string search normalises."""
    text = ("Müller-Lüdenscheidt " * (STRING_CHARACTERS // 20 + 1))[:STRING_CHARACTERS]
    given = [f"{number}{text}"[:STRING_CHARACTERS] for number in range(NAMES)]
    patient = {"resourceType": "Patient", "name": [{"family": text[:20000], "given": given}]}
    return orjson.dumps(patient)


def large_document() -> bytes:
    data = base64.b64encode(os.urandom(ATTACHMENT_BYTES)).decode()
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "application/pdf", "data": data}}],
    }
    return orjson.dumps(document)


async def _writer(
    url: str, headers: dict[str, str], bodies: list[tuple[str, bytes]], stop: float
) -> list[tuple[int, float]]:
    """(status, seconds) of each write until `stop`."""
    done: list[tuple[int, float]] = []
    timeout = aiohttp.ClientTimeout(total=600)
    # A connection per write: a server whose event loop stalls may close a kept-alive one
    # just as it is reused (its keep-alive timer fires late), which is not what is measured.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(url, timeout=timeout, connector=connector) as client:
        number = 0
        while time.perf_counter() < stop:
            kind, body = bodies[number % len(bodies)]
            number += 1
            began = time.perf_counter()
            try:
                async with client.post(f"/fhir/{kind}", data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0  # the connection failed
            done.append((status, time.perf_counter() - began))
    return done


async def _probe(url: str, stop: float) -> list[float]:
    """`/healthz` latencies, one request after another (a monitoring probe), until `stop`."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=600)) as client:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            async with client.get("/healthz") as response:
                await response.read()
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)
    return latencies


def _percentiles(latencies: list[float]) -> dict[str, float | int]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def _under_writes(
    url: str, headers: dict[str, str], writers: int, seconds: float
) -> dict[str, Any]:
    bodies = [("Patient", large_patient()), ("DocumentReference", large_document())]
    stop = time.perf_counter() + seconds
    probe = asyncio.create_task(_probe(url, stop))
    writes = await asyncio.gather(*(_writer(url, headers, bodies, stop) for _ in range(writers)))
    latencies = await probe
    statuses: dict[str, int] = {}
    for status, _ in (write for each in writes for write in each):
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    durations = [duration for each in writes for _, duration in each]
    return {
        "healthz": _percentiles(latencies),
        "writes_by_status": statuses,
        "write_p50_s": round(statistics.median(durations), 3) if durations else None,
        "body_bytes": {kind: len(body) for kind, body in bodies},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writers", type=int, default=2)
    arguments = parser.parse_args()
    with running_server() as (url, data_dir):
        token = asyncio.run(_token(url, data_dir, None))
        headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"}
        alone = asyncio.run(drive(url, healthz, 1, 3.0))
        loaded = asyncio.run(_under_writes(url, headers, arguments.writers, arguments.seconds))
    report = {
        "benchmark": "healthz_under_large_writes",
        "writers": arguments.writers,
        "seconds": arguments.seconds,
        "cpu_count": os.cpu_count(),
        "healthz_alone": {k: v for k, v in alone.as_json().items() if k != "errors"},
        "under_writes": loaded,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
