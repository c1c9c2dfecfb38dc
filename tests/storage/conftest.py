"""Fixtures of the storage tests: real backends on loopback (`tests/support/storage_servers`).

- `backend_config`: a `BackendConfig` of a fresh, empty place, once per kind of backend
  (test ids `local`, `s3`, `azure`);
- `new_backend(kind, name=None)`: a `RunningBackend` (`.config`, `.backend()`, `.stop()`,
  `.start()`, `.restart()`) of a fresh place; kinds `local`, `s3`, `azure` (azurite keeping
  its data in a folder: objects survive a restart) and `azure-in-memory` (azurite forgetting
  everything on a restart: a backend that lost its data);
- `server_backend`: a `RunningBackend` on a server that can be stopped, once for `s3` and
  once for `azure`;
- `two_backends`: a local one (`local`) and an S3 one (`s3`, the one to stop), for
  replication;
- the servers themselves, session-scoped, started when a test first needs them:
  `local_folder`, `moto_server`, `azurite_server`, `azurite_in_memory_server`.

A server a test stopped is started again (same port) when the test ends. Azurite needs node
and `make azurite`; without them its tests fail, saying so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from medicus.platform import Platform
from medicus.storage.config import BackendConfig
from tests.support.clock import MovableClock
from tests.support.storage_objects import storage_platform
from tests.support.storage_servers import (
    AzuriteServer,
    LocalFolder,
    MotoServer,
    RunningBackend,
    StorageServer,
)

KINDS = ("local", "s3", "azure")
SERVER_KINDS = ("s3", "azure")
SERVER_FIXTURES = {
    "local": "local_folder",
    "s3": "moto_server",
    "azure": "azurite_server",
    "azure-in-memory": "azurite_in_memory_server",
}

NewBackend = Callable[..., RunningBackend]


@pytest.fixture(scope="session")
def local_folder(tmp_path_factory: pytest.TempPathFactory) -> LocalFolder:
    return LocalFolder(tmp_path_factory.mktemp("local-backends"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _azurite(workdir: Path, location: Path | None) -> Iterator[AzuriteServer]:
    server = AzuriteServer(workdir, location)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite keeping its objects in a folder: they survive a restart."""
    workdir = tmp_path_factory.mktemp("azurite")
    location = workdir / "data"
    location.mkdir()
    yield from _azurite(workdir, location)


@pytest.fixture(scope="session")
def azurite_in_memory_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AzuriteServer]:
    """Azurite in memory: a restart loses every object and container."""
    yield from _azurite(tmp_path_factory.mktemp("azurite-in-memory"), None)


@pytest.fixture
def new_backend(request: pytest.FixtureRequest) -> Iterator[NewBackend]:
    """Makes `RunningBackend`s: `new_backend("s3")`, `new_backend("local", "replica")`."""
    used: list[StorageServer] = []

    def make(kind: str, name: str | None = None) -> RunningBackend:
        server: StorageServer = request.getfixturevalue(SERVER_FIXTURES[kind])
        server.start()
        used.append(server)
        return RunningBackend(server.new_config(name or kind), server)

    yield make
    for server in used:
        server.start()  # for the next test, if this one stopped it


@pytest.fixture(params=KINDS)
def backend_config(request: pytest.FixtureRequest, new_backend: NewBackend) -> BackendConfig:
    return new_backend(request.param).config


@pytest.fixture(params=SERVER_KINDS)
def server_backend(request: pytest.FixtureRequest, new_backend: NewBackend) -> RunningBackend:
    return new_backend(request.param)


@pytest.fixture
def two_backends(new_backend: NewBackend) -> tuple[RunningBackend, RunningBackend]:
    """Two backends on different servers: local (`local`) and S3 (`s3`, can be stopped)."""
    return new_backend("local"), new_backend("s3")


@pytest.fixture
async def local_and_s3(
    tmp_path: Path,
    fresh_database_url: str,
    clock: MovableClock,
    two_backends: tuple[RunningBackend, RunningBackend],
) -> AsyncIterator[Platform]:
    """A platform on a local backend (`local`) and an S3 one (`s3`, on a server the test can
    stop), every object on both."""
    backends = [running.config for running in two_backends]
    built = storage_platform(tmp_path, fresh_database_url, clock, backends)
    yield built
    await built.close()
