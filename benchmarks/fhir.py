"""FHIR hub throughput against the `/healthz` baseline of the same server in the same run:
creates/s, reads/s and a search by KVNR, with p50/p99, 16 concurrent keep-alive clients.
Prints JSON. (The 1-million-resource run with ingest through transactions and the ten typical
clinical searches comes with transactions and the remaining search features.)

    python -m benchmarks.fhir [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import aiohttp
import orjson

from benchmarks.harness import LoadResult, Request, drive, running_server
from medicus.iam.tokens import TokenGrant
from medicus.platform import build_platform
from medicus.settings import load_settings

KVNR = "http://fhir.de/sid/gkv/kvid-10"


async def _token(url: str, data_dir: str) -> str:
    platform = build_platform(load_settings(data_dir=Path(data_dir), public_url=url))
    try:
        grant = TokenGrant("bench", "user", "bench-hospital", "physician", "bench", "user/*.cruds")
        return await platform.tokens.issue_access_token(grant)
    finally:
        await platform.close()


def _patient(number: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "identifier": [{"system": KVNR, "value": f"X{number:09d}"}],
            "name": [{"family": f"Family{number % 997}", "given": ["Bench"]}],
            "birthDate": f"19{50 + number % 50}-0{1 + number % 9}-1{number % 10}",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    created: list[str] = []
    with running_server() as (url, data_dir):
        token = asyncio.run(_token(url, data_dir))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}

        async def healthz(client: aiohttp.ClientSession, _number: int) -> int:
            async with client.get("/healthz") as response:
                await response.read()
                return response.status

        async def create(client: aiohttp.ClientSession, number: int) -> int:
            async with client.post(
                "/fhir/Patient", data=_patient(number), headers=headers
            ) as response:
                body = await response.read()
                if response.status == 201:
                    created.append(orjson.loads(body)["id"])
                return response.status

        async def read(client: aiohttp.ClientSession, number: int) -> int:
            path = f"/fhir/Patient/{created[number % len(created)]}"
            async with client.get(path, headers=headers) as response:
                await response.read()
                return response.status

        async def search(client: aiohttp.ClientSession, number: int) -> int:
            query = {"identifier": f"{KVNR}|X{number % max(1, len(created)):09d}"}
            async with client.get("/fhir/Patient", params=query, headers=headers) as response:
                await response.read()
                return response.status

        def load(request: Request) -> LoadResult:
            return asyncio.run(drive(url, request, arguments.concurrency, arguments.seconds))

        baseline = load(healthz)
        creates = load(create)
        reads = load(read)
        searches = load(search)
    report = {
        "benchmark": "fhir",
        "database": "sqlite (embedded default)",
        "resources": len(created),
        "baseline_healthz": baseline.as_json(),
        "create_patient": creates.as_json(),
        "read_patient": reads.as_json(),
        "search_patient_by_kvnr": searches.as_json(),
        "read_to_baseline": round(reads.requests_per_second / baseline.requests_per_second, 3),
        "goal_read_to_baseline": 0.7,
        "cpu_count": os.cpu_count(),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
