"""The contract of a storage backend (`storage.backends.Backend`), the same for each kind:
a local folder, S3 (moto) and Azure Blob (azurite), each a real server on loopback."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from medicus.storage.backends import Backend, BackendError, ObjectMissing
from medicus.storage.config import BackendConfig
from tests.support.storage_servers import LocalFolder, MotoServer, RunningBackend

MiB = 1024 * 1024
PART = 10 * MiB
"""What obstore buffers before it turns to a multipart upload."""
FAIL_WITHIN_SECONDS = 10.0


def pattern(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def pieces(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(backend: Backend, key: str, piece_bytes: int = 8 * MiB) -> bytes:
    return b"".join(backend.read(key, piece_bytes))


@pytest.fixture
def backend(backend_config: BackendConfig) -> Backend:
    return Backend.from_config(backend_config)


def test_writes_and_reads_a_small_object(backend: Backend) -> None:
    assert backend.write("docs/a", [b"hello ", b"world"]) == 11

    assert read_all(backend, "docs/a") == b"hello world"
    assert backend.size("docs/a") == 11


def test_writes_an_empty_object(backend: Backend) -> None:
    assert backend.write("empty", []) == 0

    assert backend.size("empty") == 0
    assert read_all(backend, "empty") == b""
    assert list(backend.keys()) == ["empty"]


def test_a_write_replaces_the_object(backend: Backend) -> None:
    backend.write("a", [b"first version"])
    backend.write("a", [b"second"])

    assert read_all(backend, "a") == b"second"


def test_writes_and_reads_an_object_larger_than_a_part(backend: Backend) -> None:
    data = pattern(PART + 2 * MiB + 5)

    assert backend.write("big", pieces(data)) == len(data)

    assert backend.size("big") == len(data)
    read = list(backend.read("big", piece_bytes=MiB))
    assert b"".join(read) == data
    assert len(read) > 1  # streamed, not in one piece
    across_parts = backend.read_range("big", PART - 10, PART + 10)
    assert across_parts == data[PART - 10 : PART + 10]


def test_reads_ranges(backend: Backend) -> None:
    data = pattern(100_000)
    backend.write("r", [data])

    assert backend.read_range("r", 0, 10) == data[:10]
    assert backend.read_range("r", 40_000, 60_001) == data[40_000:60_001]
    assert backend.read_range("r", 99_990, 100_000) == data[99_990:]
    assert backend.read_range("r", 99_990, 200_000) == data[99_990:]  # cut at the end
    assert backend.read_range("r", 500, 500) == b""
    assert backend.read_range("r", 500, 10) == b""


def test_a_range_from_the_end_on_is_an_error(backend: Backend) -> None:
    backend.write("r", [b"0123456789"])

    with pytest.raises(BackendError) as raised:
        backend.read_range("r", 10, 20)
    assert not isinstance(raised.value, ObjectMissing)


def test_a_missing_object(backend: Backend) -> None:
    assert backend.size("missing") is None
    with pytest.raises(ObjectMissing, match="failed to read"):
        read_all(backend, "missing")
    with pytest.raises(ObjectMissing):
        backend.read_range("missing", 0, 10)


def test_delete_removes_the_object_and_can_be_repeated(backend: Backend) -> None:
    backend.write("gone", [b"x"])
    backend.write("stays", [b"y"])

    backend.delete("gone")
    backend.delete("gone")
    backend.delete("never-there")

    assert backend.size("gone") is None
    assert list(backend.keys()) == ["stays"]


def test_keys_lists_whole_path_segments_under_the_prefix(backend: Backend) -> None:
    for key in ("a/1", "a/b/2", "ab/3", "b/4"):
        backend.write(key, [b"."])

    assert sorted(backend.keys()) == ["a/1", "a/b/2", "ab/3", "b/4"]
    assert sorted(backend.keys("a")) == ["a/1", "a/b/2"]  # not ab/3
    assert sorted(backend.keys("a/")) == ["a/1", "a/b/2"]
    assert sorted(backend.keys("a/b")) == ["a/b/2"]
    assert list(backend.keys("c")) == []


def test_a_writer_shows_the_object_only_when_closed(backend: Backend) -> None:
    writer = backend.writer("w")
    writer.write(b"abc")
    writer.write(b"def")
    assert backend.size("w") is None

    writer.close()

    assert read_all(backend, "w") == b"abcdef"


@pytest.mark.parametrize("size", [3, PART + 1024], ids=["small", "multipart"])
def test_an_aborted_writer_leaves_nothing(backend: Backend, size: int) -> None:
    writer = backend.writer("w")
    writer.write(pattern(size))

    writer.abort()

    assert backend.size("w") is None
    assert list(backend.keys()) == []


def test_a_failing_source_leaves_nothing_and_is_not_a_backend_error(backend: Backend) -> None:
    def source() -> Iterator[bytes]:
        yield b"some bytes"
        raise ValueError("the upload broke off")

    with pytest.raises(ValueError, match="broke off"):
        backend.write("w", source())

    assert backend.size("w") is None


def test_aborting_a_multipart_upload_leaves_none_open_on_s3(
    new_backend: Callable[..., RunningBackend],
) -> None:
    running = new_backend("s3")
    server = running.server
    assert isinstance(server, MotoServer)
    writer = running.backend().writer("w")
    writer.write(pattern(PART + 1024))

    writer.abort()

    bucket = running.config.url.removeprefix("s3://")
    assert server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_object_larger_than_a_part_goes_multipart_on_s3(
    new_backend: Callable[..., RunningBackend],
) -> None:
    running = new_backend("s3")
    assert isinstance(running.server, MotoServer)
    running.backend().write("big", [pattern(PART + 1)])

    bucket = running.config.url.removeprefix("s3://")
    head = running.server.client().head_object(Bucket=bucket, Key="big")
    assert head["ETag"].strip('"').endswith("-2")  # two parts


def test_an_aborted_writer_leaves_no_file_in_a_local_folder(
    new_backend: Callable[..., RunningBackend],
) -> None:
    running = new_backend("local")
    assert isinstance(running.server, LocalFolder)
    backend = running.backend()
    backend.write("kept", [b"x"])
    writer = backend.writer("dir/w")
    writer.write(pattern(PART + 1024))

    writer.abort()

    folder = Path(running.config.url.removeprefix("file://"))
    assert [path.name for path in folder.rglob("*") if path.is_file()] == ["kept"]


def _each_fails_fast(calls: dict[str, Callable[[], Any]]) -> None:
    for action, call in calls.items():
        started = time.monotonic()
        with pytest.raises(BackendError) as raised:
            call()
        took = time.monotonic() - started
        assert took < FAIL_WITHIN_SECONDS, f"{action} took {took:.1f} s"
        assert not isinstance(raised.value, ObjectMissing), action


def test_a_stopped_server_fails_fast_and_serves_again_after_a_restart(
    server_backend: RunningBackend,
) -> None:
    backend = server_backend.backend()
    backend.write("kept", [b"kept"])

    server_backend.stop()
    _each_fails_fast(
        {
            "size": lambda: backend.size("kept"),
            "read": lambda: read_all(backend, "kept"),
            "read_range": lambda: backend.read_range("kept", 0, 2),
            "keys": lambda: list(backend.keys()),
            "write": lambda: backend.write("new", [b"new"]),
            "writer": lambda: backend.writer("new").close(),
            "delete": lambda: backend.delete("kept"),
        }
    )
    server_backend.start()

    assert read_all(backend, "kept") == b"kept"
    backend.write("new", [b"new"])
    assert sorted(backend.keys()) == ["kept", "new"]


def test_an_upload_cut_off_by_a_stopped_server_leaves_nothing(
    server_backend: RunningBackend,
) -> None:
    backend = server_backend.backend()
    writer = backend.writer("cut")
    writer.write(pattern(PART + 1024))  # the first part is on its way

    def finish() -> None:
        writer.write(b"more")
        writer.close()

    server_backend.stop()
    started = time.monotonic()
    with pytest.raises(BackendError):
        finish()
    writer.abort()
    assert time.monotonic() - started < FAIL_WITHIN_SECONDS
    server_backend.start()

    assert backend.size("cut") is None
    assert list(backend.keys()) == []


def test_two_backends_one_of_them_stopped(
    two_backends: tuple[RunningBackend, RunningBackend],
) -> None:
    local, s3 = two_backends
    assert (local.config.name, s3.config.name) == ("local", "s3")
    first, second = local.backend(), s3.backend()

    s3.stop()
    first.write("k", [b"on local"])
    with pytest.raises(BackendError):
        second.write("k", [b"on s3"])
    s3.start()

    second.write("k", [b"on s3"])
    assert read_all(first, "k") == b"on local"
    assert read_all(second, "k") == b"on s3"


def test_a_server_that_lost_its_data(new_backend: Callable[..., RunningBackend]) -> None:
    running = new_backend("azure-in-memory")
    backend = running.backend()
    backend.write("kept", [b"kept"])

    running.restart()

    assert backend.size("kept") is None
    with pytest.raises(ObjectMissing):
        read_all(backend, "kept")
    with pytest.raises(BackendError):  # its container is gone too
        backend.write("new", [b"new"])


CHILD = """
import asyncio, json, sys
from medicus.storage.backends import Backend
from medicus.storage.config import BackendConfig
backend = Backend.from_config(BackendConfig.model_validate(json.loads(sys.argv[1])))
key = "child-" + sys.argv[2]
asyncio.run(asyncio.to_thread(backend.write, key, [key.encode()]))  # as the service calls it
assert b"".join(backend.read(key)) == key.encode()
"""


def _revealed(config: BackendConfig) -> str:
    """The configuration as JSON, with its secrets (`model_dump` hides them)."""
    data = config.model_dump(mode="json")
    data["options"] = {key: value.get_secret_value() for key, value in config.options.items()}
    return json.dumps(data)


def test_short_processes_using_a_backend_exit_cleanly(
    new_backend: Callable[..., RunningBackend], tmp_path: Path
) -> None:
    """obstore's async API made some short processes abort at exit (tokio's threads at
    interpreter shutdown); the backends use its sync API, which must not."""
    running = new_backend("s3")
    config = _revealed(running.config)

    def child(number: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CHILD, config, str(number)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(child, range(20)))

    failed = [(result.returncode, result.stderr[-500:]) for result in results if result.returncode]
    assert failed == []
    assert len(list(running.backend().keys())) == 20
