"""The clock the access rules read: when a break-glass opening, a consent's period or a share
ends, compared with the time of each request. The platform is built with one clock
(`build_platform(settings, clock)`), the real UTC time unless a test moves it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]
"""The current time, timezone-aware (UTC)."""
