"""The FHIR write path, measured on a real `medicus serve` (one worker): creates of one Patient
(the server's CPU per request, from /proc, and requests/s from `--concurrency` clients), and
transaction bundles of 250 POST entries against 250 PUT entries (client ids, as a KIS
connector upserts): PUT of new ids, and PUT again of the same ids (every entry a new version),
in alternating rounds (resources/s and server CPU per resource). Prints JSON.

    python -m benchmarks.fhir_writes [--database sqlite|postgresql] [--rounds 3]

The server logs at INFO, an access line per request (`--access-log sampled` as production
does by default), unless `--log-level` says otherwise. PostgreSQL runs get a fresh database
(dropped afterwards), ANALYZEd after the first bundles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

from benchmarks.fhir import _analyze, _database, _server_environment, _token
from benchmarks.harness import Request, drive, running_server

BUNDLE_SIZE = 250
_TICKS = os.sysconf("SC_CLK_TCK")


def _patient(number: int) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{number}"}],
        "active": True,
        "name": [{"use": "official", "family": f"Family{number % 997}", "given": ["Anna", "B"]}],
        "telecom": [{"system": "phone", "value": f"+49 30 {number:07d}", "use": "home"}],
        "gender": "female" if number % 2 else "male",
        "birthDate": f"19{50 + number % 50}-0{1 + number % 9}-1{number % 10}",
        "address": [{"line": [f"Street {number}"], "city": "Berlin", "postalCode": "10115"}],
    }


def _bundle(method: str, first: int, prefix: str) -> dict[str, object]:
    """250 Patients as POSTs, or as PUTs with ids `prefix` + number."""
    entries = []
    for number in range(first, first + BUNDLE_SIZE):
        resource = _patient(number)
        if method == "POST":
            request = {"method": "POST", "url": "Patient"}
        else:
            resource["id"] = f"{prefix}{number}"
            request = {"method": "PUT", "url": f"Patient/{prefix}{number}"}
        entries.append({"resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of process `root` and its descendants (the workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    members, total = {root}, 0.0
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                changed = True
    for pid in members:
        total += times.get(pid, 0.0)
    return total


def _server_pid(port: str) -> int:
    """The pid of the `medicus serve` listening on `port` (this process's child)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and port.encode() in command:
            return int(entry.name)
    raise RuntimeError("no medicus serve child found")


def _create(headers: dict[str, str]) -> Request:
    async def request(client: aiohttp.ClientSession, number: int) -> int:
        body = orjson.dumps(_patient(number))
        async with client.post("/fhir/Patient", data=body, headers=headers) as response:
            await response.read()
            return response.status

    return request


async def _post_bundle(url: str, headers: dict[str, str], bundle: dict[str, object]) -> float:
    body = orjson.dumps(bundle)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(url, timeout=timeout) as session:
        began = time.perf_counter()
        async with session.post("/fhir", data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"bundle failed: {response.status} {answer[:300]!r}")
        return time.perf_counter() - began


def _rounds(kinds: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    """Alternating order: POST first, then PUT-new and PUT-again (of the ids PUT-new made);
    the next round POST last, and so on."""
    for number in range(rounds):
        order = kinds if number % 2 == 0 else [*kinds[1:], kinds[0]]
        for kind in order:
            yield number, kind


def _transactions(url: str, pid: int, headers: dict[str, str], rounds: int) -> dict[str, object]:
    """Per kind: resources/s (median of rounds) and server CPU ms per resource."""
    kinds = ["post", "put_new", "put_again"]
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    first = 1_000_000
    prefixes = [f"bench-hospital.{uuid.uuid4().hex[:8]}-" for _ in range(rounds)]
    for number, kind in _rounds(kinds, rounds):
        prefix = prefixes[number] if kind != "post" else ""
        method = "POST" if kind == "post" else "PUT"
        bundle = _bundle(method, first, prefix)
        cpu = _tree_cpu(pid)
        seconds = asyncio.run(_post_bundle(url, headers, bundle))
        cpu = _tree_cpu(pid) - cpu
        results[kind].append((BUNDLE_SIZE / seconds, cpu * 1000 / BUNDLE_SIZE))
        first += BUNDLE_SIZE
    summary: dict[str, object] = {}
    for kind, values in results.items():
        rates = sorted(rate for rate, _ in values)
        cpus = sorted(cpu for _, cpu in values)
        summary[kind] = {
            "resources_per_second": round(rates[len(rates) // 2], 1),
            "server_cpu_ms_per_resource": round(cpus[len(cpus) // 2], 3),
        }
    post = results["post"]
    for kind in ("put_new", "put_again"):
        ratios = sorted(put[0] / base[0] for put, base in zip(results[kind], post, strict=True))
        summary[f"{kind}_to_post_ratio"] = round(ratios[len(ratios) // 2], 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--access-log", default="all", help="MEDICUS_ACCESS_LOG (where the server has it)"
    )
    arguments = parser.parse_args()
    with _database(arguments.database, arguments.postgres_url, keep=False) as database_url:
        environment = _server_environment(database_url, 1)
        environment["MEDICUS_LOG_LEVEL"] = arguments.log_level
        if arguments.access_log != "all":
            environment["MEDICUS_ACCESS_LOG"] = arguments.access_log
        with running_server(environment) as (url, data_dir):
            pid = _server_pid(url.rsplit(":", 1)[1])
            token = asyncio.run(_token(url, data_dir, database_url))
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/fhir+json",
            }
            asyncio.run(_post_bundle(url, headers, _bundle("POST", 0, "")))
            if database_url:
                asyncio.run(_analyze(database_url))
            cpu = _tree_cpu(pid)
            load = asyncio.run(
                drive(url, _create(headers), arguments.concurrency, arguments.seconds, 200_000, 0)
            )
            cpu = _tree_cpu(pid) - cpu
            creates = {
                **load.as_json(),
                "server_cpu_ms_per_request": round(cpu * 1000 / load.requests, 3),
            }
            transactions = _transactions(url, pid, headers, arguments.rounds)
    print(
        orjson.dumps(
            {
                "benchmark": "fhir_writes",
                "database": arguments.database,
                "log_level": arguments.log_level,
                "access_log": arguments.access_log,
                "cpu_count": os.cpu_count(),
                "create_patient": creates,
                "transactions_250": transactions,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
