"""Load for the side-by-side benchmark, the same for every server: transaction bundles from an
aiohttp client (a bulk load from N connections, or one bundle after another for a row), and
wrk (with a Lua script that cycles through the row's paths and prints its percentiles as JSON)
for the rows of single requests, whose server work is small enough that a Python client
would measure itself. Each measurement carries the server's CPU over its measured part."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

from benchmarks.peer_corpus import Bundle
from benchmarks.peer_server import CpuSample, cpu_used

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Measurement:
    """A row's run on one server: `units` (requests, or resources for bundles) in `seconds`."""

    requests: int
    units: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    server_cpu_seconds: float | None
    first_error: str = ""

    @property
    def throughput(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return self.server_cpu_seconds * 1000 / self.requests

    def as_json(self) -> dict[str, object]:
        cpu = self.cpu_ms_per_request
        answer: dict[str, object] = {
            "requests": self.requests,
            "errors": self.errors,
            "throughput_per_s": round(self.throughput, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "server_cpu_ms_per_request": None if cpu is None else round(cpu, 2),
        }
        if self.first_error:
            answer["first_error"] = self.first_error
        return answer


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


CpuClock = Callable[[], CpuSample | None]


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


TOKEN_RENEWAL_SECONDS = 1200.0
"""A bulk load renews its token this often: tokens last an hour, a large load much longer."""


class RenewedToken:
    """A bearer token asked for again once it is `TOKEN_RENEWAL_SECONDS` old."""

    def __init__(self, issue: Callable[[], str]) -> None:
        self.issue = issue
        self.value = issue()
        self.issued = time.monotonic()
        self.lock = asyncio.Lock()

    async def header(self) -> dict[str, str]:
        async with self.lock:
            if time.monotonic() - self.issued > TOKEN_RENEWAL_SECONDS:
                self.value = await asyncio.to_thread(self.issue)
                self.issued = time.monotonic()
        return {"Authorization": f"Bearer {self.value}"}


async def load(
    fhir_url: str, issue_token: Callable[[], str], bundles: Iterable[Bundle], connections: int
) -> tuple[list[list[str]], float, list[str]]:
    """POST `bundles` (made as they are sent: a large corpus does not fit in memory at once)
    from `connections` clients, with tokens from `issue_token`; the ids of each bundle's
    entries (bundles and entries in their order), the seconds it took, and the errors."""
    ids: dict[int, list[str]] = {}
    errors: list[str] = []
    numbered = enumerate(bundles)
    token = RenewedToken(issue_token)

    async def client(session: aiohttp.ClientSession) -> None:
        for number, bundle in numbered:
            body = orjson.dumps(bundle)
            async with session.post(fhir_url, data=body, headers=await token.header()) as answer:
                body = await answer.read()
            if answer.status != 200:
                errors.append(f"{answer.status} {body[:300].decode(errors='replace')}")
                continue
            ids[number] = [_location_id(entry) for entry in orjson.loads(body)["entry"]]

    began = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    plain = {key: value for key, value in headers("").items() if key != "Authorization"}
    async with aiohttp.ClientSession(headers=plain, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
    seconds = time.perf_counter() - began
    return [ids.get(number, []) for number in range(len(ids) + len(errors))], seconds, errors


def _location_id(entry: dict[str, dict[str, str]]) -> str:
    """The id of `Type/id/_history/v` (absolute or relative) of a transaction response."""
    parts = entry["response"]["location"].split("/")
    return parts[parts.index("_history") - 1] if "_history" in parts else parts[-1]


async def transactions(
    fhir_url: str, token: str, bundles: list[Bundle], cpu: CpuClock
) -> Measurement:
    """POST `bundles` one after another; the first is a warm-up, not measured."""
    latencies: list[float] = []
    errors: list[str] = []
    stored = 0
    async with aiohttp.ClientSession(
        headers=headers(token), timeout=aiohttp.ClientTimeout(total=600)
    ) as session:
        await _post_bundle(session, fhir_url, bundles[0])
        cpu_before, began = cpu(), time.perf_counter()
        for bundle in bundles[1:]:
            sent = time.perf_counter()
            error = await _post_bundle(session, fhir_url, bundle)
            if error:
                errors.append(error)
                continue
            latencies.append(time.perf_counter() - sent)
            stored += len(bundle["entry"])  # type: ignore[arg-type]
        seconds = time.perf_counter() - began
        cpu_after = cpu()
    latencies.sort()
    return Measurement(
        requests=len(bundles) - 1,
        units=stored,
        errors=len(errors),
        seconds=seconds,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p95_ms=_percentile(latencies, 0.95) * 1000,
        server_cpu_seconds=cpu_used(cpu_before, cpu_after),
        first_error=errors[0] if errors else "",
    )


async def _post_bundle(session: aiohttp.ClientSession, fhir_url: str, bundle: Bundle) -> str:
    """POST one transaction; its error, or "" when it was stored whole."""
    async with session.post(fhir_url, data=orjson.dumps(bundle)) as answer:
        body = await answer.read()
    if answer.status != 200:
        return f"{answer.status} {body[:300].decode(errors='replace')}"
    return ""


WRK_SCRIPT = """
local paths = {%(paths)s}
local i = 0
wrk.method = "%(method)s"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Accept"] = "application/fhir+json"
wrk.headers["Content-Type"] = "application/fhir+json"
%(body)s
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"seconds\\": %%.6f, \\"p50_us\\": %%d, \\"p95_us\\": %%d, "
    .. "\\"non_2xx\\": %%d, \\"socket_errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkLoad:
    """What wrk sends: GETs of `paths` (relative to the FHIR base) in turn, or POSTs of `body`."""

    paths: list[str]
    seconds: float
    connections: int = 16
    threads: int = 2
    body: bytes | None = None


def wrk(fhir_url: str, token: str, load: WrkLoad, cpu: CpuClock) -> Measurement:
    """Run wrk for a short warm-up, then for `load.seconds` with the server's CPU measured."""
    base = urlsplit(fhir_url)
    root, prefix = f"{base.scheme}://{base.netloc}", base.path.rstrip("/")
    body = "" if load.body is None else f"wrk.body = [==[{load.body.decode()}]==]"
    script = WRK_SCRIPT % {
        "paths": ", ".join(f"[==[{prefix}/{path}]==]" for path in load.paths),
        "method": "GET" if load.body is None else "POST",
        "token": token,
        "body": body,
    }
    with tempfile.TemporaryDirectory(prefix="peer-wrk-") as directory:
        path = Path(directory) / "load.lua"
        path.write_text(script)
        _run_wrk(root, path, load, min(2.0, load.seconds))
        before = cpu()
        result = _run_wrk(root, path, load, load.seconds)
        used = cpu_used(before, cpu())
    failed = int(result["non_2xx"]) + int(result["socket_errors"])
    return Measurement(
        requests=int(result["requests"]),
        units=int(result["requests"]) - failed,
        errors=failed,
        seconds=float(result["seconds"]),
        p50_ms=float(result["p50_us"]) / 1000,
        p95_ms=float(result["p95_us"]) / 1000,
        server_cpu_seconds=used,
    )


def _run_wrk(root: str, script: Path, load: WrkLoad, seconds: float) -> dict[str, float]:
    command = [
        "wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "30s", "-s", str(script), root,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except FileNotFoundError:
        raise RuntimeError("wrk is not installed (apt-get install wrk)") from None
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, float] = orjson.loads(line.removeprefix("WRKJSON "))
            return result
    raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")
