"""A worker process exits with its supervisor, even when the supervisor died first."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

# The supervisor starts a worker and dies at once (SIGKILL would do the same); the worker only
# asks for its parent-death signal a second later, as a worker still importing its modules does.
_SUPERVISOR = """
import multiprocessing, os, sys, time
from medicus.core.process import exit_with_parent

def worker():
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the test reads its supervisor's output
    time.sleep(1.0)
    exit_with_parent()
    time.sleep(60)

if __name__ == "__main__":
    process = multiprocessing.get_context("fork").Process(target=worker)
    process.start()
    print(process.pid, flush=True)
    os._exit(0)
"""


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended, whether or not it was reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_worker_whose_supervisor_died_before_it_asked_exits() -> None:
    supervisor = subprocess.run(
        [sys.executable, "-c", _SUPERVISOR],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
        timeout=30,
    )
    worker = int(supervisor.stdout.strip())
    deadline = time.monotonic() + 15
    while _running(worker):
        assert time.monotonic() < deadline, "the worker outlived its supervisor"
        time.sleep(0.1)
