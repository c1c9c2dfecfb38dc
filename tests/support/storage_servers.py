"""Real object stores on loopback for the storage tests: S3 (moto in server mode, in this
process), Azure Blob (azurite, a node process) and a local directory. Each hands out
`BackendConfig`s (`new_config`), each for a fresh bucket, container or folder, so that tests
do not see each other's objects; `RunningBackend` pairs one with its server. The fixtures
are in `tests/storage/conftest.py`.

The servers stop and start again on the same port (`stop`, `start`, `restart`), for the
fault tests (a backend down during an upload, back later). A stopped one refuses
connections at once (moto's werkzeug closes every connection after its answer; azurite's
process is gone), and:

- moto keeps its state in this process, so its objects survive a restart;
- azurite keeps them if it was given a folder (`AzuriteServer(workdir, location)`); in
  memory (`AzuriteServer(workdir)`) it forgets everything on a restart, containers included:
  a backend that lost its data.

Test configurations retry once and give up connecting after a second, so that a stopped
server fails a call within a few seconds (connection refused fails at once).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3  # type: ignore[import-untyped]
import httpx
from moto.server import ThreadedMotoServer

from medicus.storage.backends import Backend
from medicus.storage.config import BackendConfig

HOST = "127.0.0.1"
S3_REGION = "eu-central-1"
S3_SECRET = "testing"  # moto takes any access key and secret
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = (  # azurite's well-known account key (public, in Microsoft's documentation)
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_FOLDER = Path(__file__).parent / "azurite"
AZURITE_BIN = AZURITE_FOLDER / "node_modules" / ".bin" / "azurite-blob"
AZURITE_START_SECONDS = 30.0


def fresh_name(prefix: str = "t") -> str:
    """A bucket or container name no other test uses (lowercase letters and digits)."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def server_config(name: str, url: str, options: dict[str, str]) -> BackendConfig:
    """A backend of a test server: plain http to loopback, one retry, a second to connect."""
    return BackendConfig.model_validate(
        {
            "name": name,
            "url": url,
            "options": options,
            "allow_http": True,
            "retries": 1,
            "connect_timeout_seconds": 1.0,
            "timeout_seconds": 20.0,
        }
    )


class StorageServer(Protocol):
    """What the fixtures need of every kind of backend."""

    kind: str

    def new_config(self, name: str) -> BackendConfig:
        """A configuration of a fresh, empty place on this server."""

    def start(self) -> None: ...
    def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...


@dataclass(frozen=True)
class RunningBackend:
    """A backend of a test: its configuration and the server that holds it. Stopping it stops
    the server, for every backend on it; the fixtures start it again after the test."""

    config: BackendConfig
    server: StorageServer

    def backend(self) -> Backend:
        return Backend.from_config(self.config)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.stop()
        self.server.start()


class LocalFolder:
    """The local backend: a folder per configuration, under `root`. Nothing to stop."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running = True

    def new_config(self, name: str) -> BackendConfig:
        folder = self.root / fresh_name()
        return BackendConfig(name=name, url=folder.as_uri())

    def start(self) -> None:
        """Nothing to start: a local folder is always there."""

    def stop(self) -> None:
        raise NotImplementedError("a local folder cannot be stopped; use a server backend")


class MotoServer:
    """S3 as moto serves it in this process (a thread). Its objects live in moto's global
    state, not in the server: they survive `stop` and `start`."""

    kind = "s3"

    def __init__(self) -> None:
        self.port = 0  # a free one on the first start, the same one afterwards
        self._server: ThreadedMotoServer | None = None
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        """Stop serving: the port refuses connections (werkzeug closes its socket)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> Any:
        """A boto3 S3 client of this server (for what the backend does not offer)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_SECRET,
            aws_secret_access_key=S3_SECRET,
        )

    def new_config(self, name: str) -> BackendConfig:
        bucket = fresh_name()
        self.client().create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION}
        )
        options = {
            "endpoint": self.endpoint,
            "region": S3_REGION,
            "access_key_id": S3_SECRET,
            "secret_access_key": S3_SECRET,
        }
        return server_config(name, f"s3://{bucket}", options)


class AzuriteServer:
    """Azure Blob as azurite serves it (a node process of its own). With a `location` it
    keeps its objects in that folder, across restarts; without, in memory, lost on stop."""

    kind = "azure"

    def __init__(self, workdir: Path, location: Path | None = None) -> None:
        self.workdir = workdir
        self.location = location
        self.port = 0  # a free one on the first start, the same one afterwards
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def endpoint(self) -> str:
        """The account's URL (path style, as azurite serves it)."""
        return f"http://{HOST}:{self.port}/{AZURE_ACCOUNT}"

    def start(self) -> None:
        if self._process is not None:
            return
        _check_azurite_installed()
        self._starts += 1
        log = self.workdir / f"azurite-{self._starts}.log"
        args = [str(AZURITE_BIN), "--blobHost", HOST, "--blobPort", str(self.port)]
        args += ["--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        if self.location is None:
            args += ["--inMemoryPersistence"]
        else:
            args += ["--location", str(self.location)]
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own: stop ends all of it
            )
        try:
            self.port = _wait_until_listening(self._process, log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End azurite's process group; the port refuses connections."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_container(self, container: str) -> None:
        """Create `container` (obstore cannot): Azure's REST call, signed with the key."""
        response = _azure_call(self.endpoint, "PUT", container)
        if response.status_code != 201:
            raise RuntimeError(f"azurite refused container {container}: {response.text[:300]}")

    def new_config(self, name: str) -> BackendConfig:
        container = fresh_name()
        self.create_container(container)
        # Not obstore's `use_emulator`: it ignores `endpoint` and goes to port 10000.
        options = {
            "account_name": AZURE_ACCOUNT,
            "account_key": AZURE_KEY,
            "endpoint": self.endpoint,
        }
        return server_config(name, f"az://{container}", options)


def _check_azurite_installed() -> None:
    """Fail with what to do when azurite cannot run here."""
    if shutil.which("node") is None:
        raise RuntimeError(
            "node is not on PATH: the Azure Blob tests run azurite, which needs node (20) and "
            "npm; install them, then run `make azurite`"
        )
    if not AZURITE_BIN.exists():
        raise RuntimeError(
            f"azurite is not installed in {AZURITE_FOLDER}: run `make azurite` "
            "(npm ci there; needs npm)"
        )


def _wait_until_listening(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port azurite listens on, once it says so; RuntimeError with its output if it
    exits or stays silent too long."""
    listening = re.compile(rb"successfully listens on http://[\d.]+:(\d+)")
    deadline = time.monotonic() + AZURITE_START_SECONDS
    while time.monotonic() < deadline:
        found = listening.search(log.read_bytes())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    output = log.read_bytes().decode(errors="replace")[-2000:]
    state = "exited" if process.poll() is not None else "did not start in time"
    raise RuntimeError(f"azurite {state}; its output:\n{output}")


def _azure_call(endpoint: str, method: str, container: str) -> httpx.Response:
    """A container call of Azure's Blob REST API (`restype=container`), signed Shared Key."""
    headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    # VERB, eleven standard headers (all empty here), the x-ms- headers, the resource
    canonical_headers = "".join(f"{key}:{value}\n" for key, value in sorted(headers.items()))
    resource = f"/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}/{container}\nrestype:container"
    to_sign = method + "\n" * 12 + canonical_headers + resource
    digest = hmac.new(base64.b64decode(AZURE_KEY), to_sign.encode(), hashlib.sha256).digest()
    headers["Authorization"] = f"SharedKey {AZURE_ACCOUNT}:{base64.b64encode(digest).decode()}"
    url = f"{endpoint}/{container}?restype=container"
    return httpx.request(method, url, headers=headers, timeout=10)
