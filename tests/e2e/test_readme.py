"""README is the contract with a new user: what it and `make run`'s output tell them to type
works as written. `make run` itself runs here, on a fresh data directory and a free port (the
same checkout's `.venv`, which `make run` finds installed), and the token command is taken
from the demo's output and run as a shell would."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.conftest import free_port, medicus_environment

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = [
    pytest.mark.skipif(
        shutil.which("make") is None or shutil.which("curl") is None,
        reason="README's steps need make and curl",
    ),
    pytest.mark.skipif(
        not (ROOT / ".venv" / "bin" / "medicus").exists(),
        reason="`make run` uses the checkout's .venv, which `make install` creates",
    ),
]


@dataclass
class Output:
    """Lines a process writes, collected while it runs."""

    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class MakeRun:
    base_url: str
    environment: dict[str, str]
    output: Output


def _collect(stream: Iterator[str], output: Output) -> None:
    for line in stream:
        output.lines.append(line.rstrip("\n"))


@contextmanager
def make_run(data_dir: Path) -> Iterator[MakeRun]:
    """`make run` in the checkout until its server is ready, with the messenger it manages (its
    Synapse on a free port); the whole process group is ended on exit."""
    port = free_port()
    environment = medicus_environment(
        data_dir,
        None,
        MEDICUS_PORT=str(port),
        MEDICUS_MESSENGER="managed",
        MEDICUS_MESSENGER_SYNAPSE_URL=f"http://127.0.0.1:{free_port()}",
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output()
    reader = threading.Thread(target=_collect, args=(process.stdout, output), daemon=True)
    reader.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(process, base_url, output)
        yield MakeRun(base_url, environment, output)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        reader.join(10)


def _wait_until_ready(process: subprocess.Popen[str], base_url: str, output: Output) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make run ended early:\n{output.text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"make run was not ready within 180 s:\n{output.text()}")


def _shell(command: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_readme_starts_with_make_run_and_make_test_only() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    assert README.index(first_block.group(0)) < README.index("\n## ")


def test_the_medicus_commands_readme_names_work_as_written(tmp_path: Path) -> None:
    named = set(re.findall(r"`(\.venv/bin/medicus [^`]*)`", README))
    assert ".venv/bin/medicus config show" in named
    environment = medicus_environment(tmp_path / "var", None)
    for command in sorted(named):
        result = _shell(command, environment)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert result.stdout.strip(), command


def test_make_run_then_a_token_as_the_demo_says_then_a_fhir_read(tmp_path: Path) -> None:
    if POSTGRES_ADMIN_URL:
        pytest.skip("README's path is the embedded SQLite default; the SQLite run covers it")
    with make_run(tmp_path / "var") as run:
        printed = run.output.text()
        assert "database at revision" in printed
        assert "Running upgrade" not in printed  # one line for the migrations, not one each
        assert f"log in at {run.base_url}/login" in printed
        assert "second factor" in printed
        curl_lines = [line.strip() for line in run.output.lines if line.strip().startswith("curl")]
        assert len(curl_lines) == 1, printed
        command = curl_lines[0]
        assert command.endswith(f"{run.base_url}/fhir/Patient")
        token_command = re.search(r"\$\((.*)\)", command)
        assert token_command is not None
        assert shlex.split(token_command.group(1))[:3] == [".venv/bin/medicus", "admin", "token"]

        answer = _shell(command, run.environment)
        assert answer.returncode == 0, answer.stderr
        bundle = orjson.loads(answer.stdout)
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"

        versions = httpx.get(f"{run.base_url}/_matrix/client/versions")
        assert versions.status_code == 200, "make run brings up the messenger's Synapse"
        assert "v1.11" in versions.json()["versions"]

        landing = httpx.get(run.base_url, headers={"Accept": "text/html"}, follow_redirects=True)
        assert str(landing.url).startswith(f"{run.base_url}/login?next=")
        assert "portal: " in printed
