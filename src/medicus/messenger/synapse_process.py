"""Synapse as a managed process: started from this virtualenv with the configuration medicus
wrote, checked over HTTP, stopped by its pid file. Synapse is never imported: it runs
unmodified as its own program (AGPL-3.0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from medicus.messenger.homeserver import Homeserver

_STARTUP_SECONDS = 60.0


class SynapseError(RuntimeError):
    """Synapse could not be started, or is not answering."""


@dataclass(frozen=True)
class SynapseStatus:
    running: bool
    pid: int | None
    answering: bool
    version: str | None


def status(homeserver: Homeserver) -> SynapseStatus:
    pid = _pid(homeserver)
    version = _version(homeserver)
    return SynapseStatus(pid is not None, pid, version is not None, version)


def start(homeserver: Homeserver, platform_secret: bytes, *, with_parent: bool) -> int:
    """Start Synapse unless it answers already; wait until it answers. `with_parent`: it ends
    with this process (`medicus serve`), else it runs on (`medicus messenger start`). Returns
    its pid (0 when another one was answering already)."""
    if _version(homeserver) is not None:
        return 0
    config = homeserver.write_config(platform_secret)
    _generate_missing_keys(config)
    with homeserver.log_path.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter, our own arguments)
            [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=homeserver.directory,
            start_new_session=not with_parent,
            preexec_fn=_end_with_parent if with_parent else None,
        )
    # Synapse writes a pid file only when it daemonises itself, which a supervised child
    # must not do; medicus writes it, for `medicus messenger stop` and `status`.
    homeserver.pid_path.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if _version(homeserver) is not None:
            return process.pid
        if process.poll() is not None:
            raise SynapseError(
                f"Synapse exited at start (code {process.returncode}); see {homeserver.log_path}"
            )
        time.sleep(0.2)
    process.kill()
    raise SynapseError(f"Synapse did not answer within a minute; see {homeserver.log_path}")


def stop(homeserver: Homeserver, timeout: float = 30.0) -> bool:
    """Stop the Synapse of this data directory; False if none was running."""
    pid = _pid(homeserver)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    homeserver.pid_path.unlink(missing_ok=True)
    return True


def _generate_missing_keys(config: os.PathLike[str]) -> None:
    """Synapse's own signing key (of its events), made once by Synapse itself."""
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        check=True,
        capture_output=True,
    )


def _end_with_parent() -> None:
    """Runs in the child before Synapse starts: SIGTERM when `medicus serve` dies, even by
    SIGKILL (Linux's parent-death signal, through prctl(2); the standard library has none)."""
    import ctypes

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _pid(homeserver: Homeserver) -> int | None:
    try:
        pid = int(homeserver.pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def _version(homeserver: Homeserver) -> str | None:
    try:
        answer = httpx.get(f"{homeserver.synapse_url}/_synapse/admin/v1/server_version", timeout=2)
    except httpx.TransportError:
        return None
    if answer.status_code != 200:
        return None
    return str(answer.json().get("server_version", ""))
