"""Server processes: workers that end with their supervisor, and large buffers returned to
the system when freed."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_M_MMAP_THRESHOLD = -3  # from <malloc.h>
_OWN_MAPPING_BYTES = 128 * 1024


def release_large_buffers() -> bool:
    """Have glibc give every buffer of 128 KiB or more its own mapping, returned to the
    system when freed; True if it could be asked.

    By default glibc raises that threshold to the largest buffer freed so far (up to 32 MiB),
    after which the 1 to 8 MiB buffers of streaming storage come from per-thread arenas that
    keep their memory: measured here, a 256 MiB object put and streamed back left the
    process 100 MB larger; with the threshold fixed, 12 MB. Setting it (mallopt(3), glibc's,
    which Python does not wrap; asked through ctypes) also stops the raising. Elsewhere
    this does nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_BYTES))


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
