"""Worker processes that end with their supervisor."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def exit_with_parent() -> None:
    """Have the kernel send this process SIGTERM (a graceful shutdown) when its parent dies.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers, which
    would go on serving the port unsupervised. Linux's parent-death signal is set through
    prctl(2), which the standard library does not wrap; elsewhere this does nothing.

    The signal only covers a death after it is asked for: a worker still importing its modules
    when the supervisor died has been handed to another parent already, so it compares its
    parent with the one that started it (multiprocessing knows it) and ends itself."""
    if not sys.platform.startswith("linux"):
        return
    starter = multiprocessing.parent_process()
    supervisor = starter.pid if starter is not None else os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)
