"""Collaboration spaces against the plain storage API (`/storage/objects`) on one server, in
one run, alternating rounds: PUT and GET MB/s of one large file through the spaces' REST
API (`/collab/content`) and WebDAV (`/dav`), each against the storage API's; the cost of
reading a document's text in its upload (a 10 MB PDF against 10 MB that has no text); how
fast 10,000 small files are created with concurrent PUTs, and the time to list their folder
(REST `children` and WebDAV `PROPFIND Depth: 1`, p50/p95); the server's peak RSS. Prints JSON.

    python -m benchmarks.collab [--mb 256] [--rounds 3] [--files 10000] [--listings 20]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.collab.documents import pdf

from benchmarks.harness import demo_token
from benchmarks.storage import (
    DEMO_PHYSICIAN,
    MEGABYTE,
    TOKEN_SECONDS,
    peak_rss_mb,
    percentile,
    serving,
    write_source,
)
from medicus.demo import load_demo
from medicus.iam.roles import ROLE_SCOPES, Role
from medicus.platform import build_platform
from medicus.settings import load_settings

CONCURRENCY = 16
"""Clients creating the small files at once."""
PDF_MB = 10


@dataclass(frozen=True)
class Api:
    """One way to keep a file's bytes and read them back."""

    name: str
    put: Callable[[Path], str]
    """Sends the file; where it is read from."""
    get: Callable[[str], str]
    """Reads it; its SHA-256."""


async def physician_token(url: str, data_dir: Path) -> str:
    """Demo data and an access token of a demo physician with all of the role's scopes
    (an app password for WebDAV needs them)."""
    settings = load_settings(data_dir=data_dir, public_url=url, access_token_seconds=TOKEN_SECONDS)
    platform = build_platform(settings)
    try:
        await load_demo(platform)
        return await demo_token(platform, DEMO_PHYSICIAN, ROLE_SCOPES[Role.PHYSICIAN])
    finally:
        await platform.close()


def _sha256_of(answer: httpx.Response) -> str:
    answer.raise_for_status()
    digest = hashlib.sha256()
    for piece in answer.iter_bytes(4 * MEGABYTE):
        digest.update(piece)
    return digest.hexdigest()


def _read(client: httpx.Client, location: str) -> str:
    with client.stream("GET", location) as answer:
        return _sha256_of(answer)


def storage_api(client: httpx.Client) -> Api:
    def put(source: Path) -> str:
        with source.open("rb") as body:
            answer = client.post("/storage/objects", content=body)
        answer.raise_for_status()
        return str(answer.headers["location"])

    return Api("storage", put, lambda location: _read(client, location))


def rest_api(client: httpx.Client, space_id: str) -> Api:
    """`PUT /collab/content/{space}/root/{name}`: each round a new version of one file."""

    def put(source: Path) -> str:
        with source.open("rb") as body:
            answer = client.put(f"/collab/content/{space_id}/root/{source.name}", content=body)
        answer.raise_for_status()
        return f"/collab/content/{space_id}/{answer.json()['id']}"

    return Api("rest", put, lambda location: _read(client, location))


def webdav_api(client: httpx.Client, space_id: str) -> Api:
    """`PUT /dav/{space}/{name}`, Basic auth with an app password (`client`'s)."""

    def put(source: Path) -> str:
        location = f"/dav/{space_id}/{source.name}"
        with source.open("rb") as body:
            answer = client.put(location, content=body)
        answer.raise_for_status()
        return location

    return Api("webdav", put, lambda location: _read(client, location))


def webdav_client(client: httpx.Client, url: str) -> httpx.Client:
    """A client of `/dav` that logs in as the demo physician with a new app password."""
    made = client.post("/collab/app-passwords", json={"label": "benchmark"})
    made.raise_for_status()
    auth = httpx.BasicAuth(DEMO_PHYSICIAN, made.json()["password"])
    return httpx.Client(base_url=url, auth=auth, timeout=600)


def rounds(apis: list[Api], source: Path, source_sha: str, count: int) -> dict[str, list[float]]:
    """MB/s of each API's PUT and GET of `source`, the APIs one after the other in each of
    `count` rounds."""
    speeds: dict[str, list[float]] = {}
    megabytes = source.stat().st_size / MEGABYTE
    for number in range(count):
        for api in apis:
            began = time.perf_counter()
            location = api.put(source)
            put_seconds = time.perf_counter() - began
            began = time.perf_counter()
            digest = api.get(location)
            get_seconds = time.perf_counter() - began
            assert digest == source_sha, f"{api.name}: the download differs from the upload"
            speeds.setdefault(f"{api.name}_put", []).append(round(megabytes / put_seconds, 1))
            speeds.setdefault(f"{api.name}_get", []).append(round(megabytes / get_seconds, 1))
        print(f"round {number + 1}: {speeds}", file=sys.stderr)
    return speeds


def ten_mb_pdf() -> bytes:
    """A PDF of `PDF_MB` MB of text: pages of words with numbers (which compress as text
    does)."""
    rng = random.Random(21)
    words = ("Befund", "Thrombolyse", "Verlauf", "Diagnose", "Kontrolle", "Labor")
    page = " ".join(f"{rng.choice(words)}{rng.randrange(10**6)}" for _ in range(400))
    per_page = len(pdf(page, page)) - len(pdf(page))
    return pdf(*(f"Seite {number} {page}" for number in range(PDF_MB * MEGABYTE // per_page)))


def text_cost(client: httpx.Client, space_id: str, count: int) -> dict[str, Any]:
    """Milliseconds of uploading a 10 MB PDF of text (its text is read in the upload)
    against as many bytes without text, alternately."""
    document = ten_mb_pdf()
    binary = hashlib.shake_256(b"medicus").digest(len(document))
    times: dict[str, list[float]] = {"pdf": [], "binary": []}
    for _ in range(count):
        for kind, data in (("pdf", document), ("binary", binary)):
            began = time.perf_counter()
            answer = client.put(f"/collab/content/{space_id}/root/cost.{kind}", content=data)
            answer.raise_for_status()
            times[kind].append(round((time.perf_counter() - began) * 1000, 1))
    found = client.get("/collab/search", params={"q": "seite thrombolyse"}).json()["results"]
    return {
        "pdf_mb": round(len(document) / MEGABYTE, 1),
        "pdf_upload_ms": times["pdf"],
        "binary_upload_ms": times["binary"],
        "text_read_ms": round(statistics.median(times["pdf"]) - statistics.median(times["binary"])),
        "pdf_found_by_its_text": [node["name"] for node in found] == ["cost.pdf"],
    }


async def create_files(url: str, token: str, space_id: str, folder: str, count: int) -> float:
    """Seconds to PUT `count` small files into `folder`, `CONCURRENCY` requests at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    numbers = iter(range(count))
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def worker() -> None:
            for number in numbers:
                name = f"Befund-{number:05d}.txt"
                body = f"Befund {number}\n".encode()
                answer = await client.put(
                    f"/collab/content/{space_id}/{folder}/{name}", content=body
                )
                answer.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - began


def listing_ms(list_folder: Callable[[], int], count: int, expected: int) -> dict[str, float]:
    """p50/p95 milliseconds of listing the folder `count` times (the first one unmeasured)."""
    assert list_folder() == expected
    times = []
    for _ in range(count):
        began = time.perf_counter()
        assert list_folder() == expected
        times.append((time.perf_counter() - began) * 1000)
    return {"p50": round(percentile(times, 0.5), 1), "p95": round(percentile(times, 0.95), 1)}


def rest_listing(client: httpx.Client, space_id: str, folder: str) -> Callable[[], int]:
    def list_folder() -> int:
        answer = client.get(f"/collab/spaces/{space_id}/nodes/{folder}/children")
        answer.raise_for_status()
        return len(answer.json()["children"])

    return list_folder


PROPFIND_BODY = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:displayname/>'
    b"<d:getlastmodified/><d:getcontentlength/><d:resourcetype/><d:getcontenttype/>"
    b"<d:getetag/></d:prop></d:propfind>"
)
"""The properties a sync client (rclone) asks for."""
RESPONSE = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?response>")


def webdav_listing(client: httpx.Client, space_id: str, folder: str) -> Callable[[], int]:
    """`PROPFIND Depth: 1` of the folder: its entries (the folder itself not counted)."""

    def list_folder() -> int:
        answer = client.request(
            "PROPFIND",
            f"/dav/{space_id}/{folder}/",
            headers={"Depth": "1", "Content-Type": "application/xml"},
            content=PROPFIND_BODY,
        )
        assert answer.status_code == 207, answer.status_code
        return len(RESPONSE.findall(answer.content)) - 1

    return list_folder


def new_space(client: httpx.Client) -> tuple[str, str]:
    """A space of the demo physician, with a folder for the many files: their ids."""
    space = client.post("/collab/spaces", json={"name": "Benchmark"})
    space.raise_for_status()
    space_id = space.json()["id"]
    folder = client.post(f"/collab/spaces/{space_id}/nodes/root/folders", json={"name": FOLDER})
    folder.raise_for_status()
    return space_id, folder.json()["id"]


def ratios(speeds: dict[str, list[float]]) -> dict[str, float]:
    """Each API's median MB/s against the storage API's."""
    median = {name: statistics.median(values) for name, values in speeds.items()}
    return {
        f"{api}_{way}_vs_storage": round(median[f"{api}_{way}"] / median[f"storage_{way}"], 3)
        for api in ("rest", "webdav")
        for way in ("put", "get")
        if f"{api}_{way}" in median
    }


FOLDER = "Befunde"


def run(arguments: argparse.Namespace, folder: Path) -> dict[str, Any]:
    data_dir = folder / "data"
    data_dir.mkdir()
    source = folder / "large.bin"
    source_sha = write_source(source, arguments.mb * MEGABYTE)
    with serving(data_dir) as (url, pid):
        token = asyncio.run(physician_token(url, data_dir))
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            space_id, many = new_space(client)
            with webdav_client(client, url) as dav:
                apis = [storage_api(client), rest_api(client, space_id), webdav_api(dav, space_id)]
                speeds = rounds(apis, source, source_sha, arguments.rounds)
                cost = text_cost(client, space_id, arguments.rounds)
                seconds = asyncio.run(create_files(url, token, space_id, many, arguments.files))
                print(f"{arguments.files} files in {seconds:.1f} s", file=sys.stderr)
                listings = {
                    "rest_children_ms": listing_ms(
                        rest_listing(client, space_id, many), arguments.listings, arguments.files
                    ),
                    "webdav_propfind_depth1_ms": listing_ms(
                        webdav_listing(dav, space_id, FOLDER), arguments.listings, arguments.files
                    ),
                }
        rss = peak_rss_mb(pid)
    return {
        "benchmark": "collab",
        "database": "sqlite",
        "file_mb": arguments.mb,
        "rounds": arguments.rounds,
        "mb_per_s": speeds,
        **ratios(speeds),
        "text_in_upload": cost,
        "files": arguments.files,
        "files_concurrency": CONCURRENCY,
        "files_create_seconds": round(seconds, 1),
        "files_per_second": round(arguments.files / seconds, 1),
        "folder_listing": listings,
        "server_peak_rss_mb": round(rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--listings", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medicus-bench-collab-") as folder:
        report = run(arguments, Path(folder))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
