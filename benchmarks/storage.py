"""Encrypted storage against a plain file copy of the same bytes on the same disk, in one run,
alternating rounds: upload (tus, with a real tus client: tuspy) and download MB/s, Range
reads of 1 MB from the large object (p50/p95), a tus upload interrupted and resumed
(SHA-256 checked), and the server's peak RSS. Prints JSON.

    python -m benchmarks.storage [--mb 2048] [--rounds 3] [--ranges 200]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
from tusclient.client import TusClient

from benchmarks.harness import demo_token, free_port, wait_ready
from medicus.demo import load_demo
from medicus.platform import build_platform
from medicus.settings import load_settings

DEMO_PHYSICIAN = "dr.berg@uk-nordstadt.example"
TUS_CHUNK = 64 * 1024 * 1024
MEGABYTE = 1024 * 1024
TOKEN_SECONDS = 3600
"""The longest token lifetime medicus allows: rounds of 2 GiB outlast the default 5 minutes."""
T = TypeVar("T")


@contextmanager
def serving(data_dir: Path) -> Iterator[tuple[str, int]]:
    """`medicus serve` on a free loopback port: its URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDICUS_")}
    env.update({"MEDICUS_DATA_DIR": str(data_dir), "MEDICUS_LOG_LEVEL": "WARNING"})
    env["MEDICUS_ACCESS_TOKEN_SECONDS"] = str(TOKEN_SECONDS)
    process = subprocess.Popen(
        [sys.executable, "-m", "medicus", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def peak_rss_mb(pid: int) -> float:
    """The process's resident-memory high-water mark (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def physician_token(url: str, data_dir: Path) -> str:
    """Demo data and an access token of a demo physician that may keep and read Binary."""
    settings = load_settings(data_dir=data_dir, public_url=url, access_token_seconds=TOKEN_SECONDS)
    platform = build_platform(settings)
    try:
        await load_demo(platform)
        return await demo_token(platform, DEMO_PHYSICIAN, "openid fhirUser user/Binary.cruds")
    finally:
        await platform.close()


def write_source(path: Path, size: int) -> str:
    """A file of `size` random-looking bytes (a CT series does not compress); its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MEGABYTE)
    with path.open("wb") as file:
        for number in range(-(-size // MEGABYTE)):
            piece = (number.to_bytes(8, "big") + block[8:])[: size - number * MEGABYTE]
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


def tus_upload(url: str, token: str, source: Path, stop_at: int | None = None) -> str:
    """Upload `source` with tuspy in 64 MiB chunks (up to `stop_at` bytes); the upload's URL."""
    client = TusClient(f"{url}/storage/uploads", headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(
        str(source), chunk_size=TUS_CHUNK, metadata={"filename": source.name}
    )
    if stop_at is None:
        uploader.upload()
    else:
        uploader.upload(stop_at=stop_at)
    return str(uploader.url)


def resume_upload(url: str, token: str, source: Path, upload_url: str) -> None:
    client = TusClient(f"{url}/storage/uploads", headers={"Authorization": f"Bearer {token}"})
    client.uploader(str(source), url=upload_url, chunk_size=TUS_CHUNK).upload()


def object_of(upload_url: str, token: str) -> str:
    """The stored object a finished upload became (its `Medicus-Object` header)."""
    answer = httpx.head(
        upload_url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    )
    return answer.headers["medicus-object"]


def download(url: str, token: str, location: str, target: Path) -> str:
    """Stream the object to `target`; its SHA-256."""
    digest = hashlib.sha256()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}{location}", headers=headers, timeout=600) as answer:
        answer.raise_for_status()
        with target.open("wb") as file:
            for piece in answer.iter_bytes(4 * MEGABYTE):
                digest.update(piece)
                file.write(piece)
    return digest.hexdigest()


def timed(action: Callable[..., T], *arguments: object) -> tuple[float, T]:
    """Seconds `action(*arguments)` took, and what it returned."""
    start = time.perf_counter()
    result = action(*arguments)
    return time.perf_counter() - start, result


def range_reads(url: str, token: str, location: str, size: int, count: int) -> list[float]:
    """Milliseconds of `count` reads of 1 MB at random places of the object."""
    rng = random.Random(20)
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for _ in range(count):
            start = rng.randrange(0, max(1, size - MEGABYTE))
            began = time.perf_counter()
            answer = client.get(
                f"{url}{location}", headers={"Range": f"bytes={start}-{start + MEGABYTE - 1}"}
            )
            times.append((time.perf_counter() - began) * 1000)
            assert answer.status_code == 206, answer.status_code
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rounds(
    url: str, token: str, work: Path, source: Path, source_sha: str, count: int
) -> dict[str, object]:
    """Alternating rounds of copy, upload and download of the same bytes; MB/s of each."""
    speeds: dict[str, list[float]] = {"copy": [], "upload": [], "download": []}
    location = ""
    megabytes = source.stat().st_size / MEGABYTE
    for number in range(count):
        copy_seconds, _ = timed(shutil.copyfile, source, work / "copy.bin")
        (work / "copy.bin").unlink()
        upload_seconds, upload_url = timed(tus_upload, url, token, source)
        location = object_of(upload_url, token)
        target = work / "download.bin"
        download_seconds, digest = timed(download, url, token, location, target)
        target.unlink()
        assert digest == source_sha, "the download differs from the upload"
        for name, seconds in (
            ("copy", copy_seconds),
            ("upload", upload_seconds),
            ("download", download_seconds),
        ):
            speeds[name].append(megabytes / seconds)
        print(f"round {number + 1}: {speeds}", file=sys.stderr)
    return {"speeds": speeds, "location": location}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranges", type=int, default=200)
    arguments = parser.parse_args()
    size = arguments.mb * MEGABYTE
    with tempfile.TemporaryDirectory(prefix="medicus-bench-storage-") as folder:
        data_dir = Path(folder) / "data"
        data_dir.mkdir()
        source = Path(folder) / "ct-series.bin"
        source_sha = write_source(source, size)
        with serving(data_dir) as (url, pid):
            token = asyncio.run(physician_token(url, data_dir))
            measured = rounds(url, token, Path(folder), source, source_sha, arguments.rounds)
            location = str(measured["location"])
            ranges = range_reads(url, token, location, size, arguments.ranges)
            upload_url = tus_upload(url, token, source, stop_at=size // 2)
            resume_upload(url, token, source, upload_url)
            resumed = download(url, token, object_of(upload_url, token), Path(folder) / "r.bin")
            rss = peak_rss_mb(pid)
    speeds: dict[str, list[float]] = measured["speeds"]  # type: ignore[assignment]
    median = {name: statistics.median(values) for name, values in speeds.items()}
    report = {
        "benchmark": "storage",
        "object_mb": arguments.mb,
        "rounds": arguments.rounds,
        "encryption": "AES-256-GCM, 1 MiB chunks",
        "tus_chunk_mb": TUS_CHUNK // MEGABYTE,
        "copy_mb_per_s": speeds["copy"],
        "upload_mb_per_s": speeds["upload"],
        "download_mb_per_s": speeds["download"],
        "upload_vs_copy": round(median["upload"] / median["copy"], 3),
        "download_vs_copy": round(median["download"] / median["copy"], 3),
        "range_1mb_ms": {
            "count": len(ranges),
            "p50": round(percentile(ranges, 0.5), 2),
            "p95": round(percentile(ranges, 0.95), 2),
        },
        "interrupted_upload_sha256_equal": resumed == source_sha,
        "server_peak_rss_mb": round(rss, 1),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
