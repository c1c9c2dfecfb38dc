"""Structured logs: JSON lines in production, readable lines in development.

Log events name what happened and carry ids (request id, route template, status), never personal
data or secrets: patient data belongs in the audit trail, which is access-controlled.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

import orjson
import structlog

AccessLogMode = Literal["all", "sampled", "errors"]

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever `sys.stderr` is when a record comes, not to the stream
    it was at configuration: a server thread that outlives the configuring code (a test's
    captured stream, closed since) must neither fail nor lose its lines."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO | None) -> None:
        """`StreamHandler.__init__` sets it; the stream is looked up at each write instead."""


def configure_logging(level: str, json_lines: bool) -> None:
    """Route structlog and the standard library (uvicorn, sqlalchemy, alembic) to one format."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_lines else _keep,
            renderer,
        ],
    )
    handler = _StandardError()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces every migration step at info; `medicus migrate` sums them up in one
    # line instead, and the steps show with MEDICUS_LOG_LEVEL=DEBUG.
    logging.getLogger("alembic").setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Access lines are written by medicus itself with the route template instead of the raw
    # path, because raw paths and query strings can carry patient identifiers.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx announces every request it sends with its full URL at info: the Messenger-Proxy's
    # carry access tokens in query strings (media downloads) and room ids in paths.
    logging.getLogger("httpx").setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _keep(
    _logger: structlog.types.WrappedLogger, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@dataclass(frozen=True)
class AccessLog:
    """Which requests get an access line, and how it is written. `all`: every one; `sampled`:
    a `sample_rate` share of them; `errors`: none but these, which every mode logs: statuses
    from 400 and requests slower than `slow_ms`. Metrics count every request whatever the
    mode; the audit trail records every access to data whatever the mode.

    In JSON the line is one `orjson` dump written straight to stderr: through structlog's
    processors and the logging module a line cost about a third of a millisecond, a tenth
    of a Patient create."""

    mode: AccessLogMode = "all"
    sample_rate: float = 0.01
    slow_ms: float = 1000.0
    enabled: bool = True
    json_lines: bool = False
    chance: Callable[[], float] = random.random

    def wanted(self, status: int, duration_ms: float) -> bool:
        if not self.enabled:
            return False
        if self.mode == "all" or status >= 400 or duration_ms >= self.slow_ms:
            return True
        return self.mode == "sampled" and self.chance() < self.sample_rate

    def write(self, method: str, route: str, status: int, duration_ms: float) -> None:
        """One access line, if `wanted`; bound context (the request id) comes along."""
        if not self.wanted(status, duration_ms):
            return
        fields = {"method": method, "route": route, "status": status, "duration_ms": duration_ms}
        if not self.json_lines:
            _ACCESS.info("request", **fields)
            return
        line = {
            **structlog.contextvars.get_contextvars(),
            **fields,
            "event": "request",
            "level": "info",
            "logger": _ACCESS_NAME,
            "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        sys.stderr.write(orjson.dumps(line).decode() + "\n")


_ACCESS_NAME = "medicus.http"
_ACCESS = get_logger(_ACCESS_NAME)
