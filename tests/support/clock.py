"""A clock the tests move forward, instead of rewriting stored times in SQL."""

from __future__ import annotations

import datetime as dt

from medicus.core.db import utc_now


class MovableClock:
    """The real time plus however far the test has moved it (tokens, sessions and stored times
    stay consistent with the real time until a test moves the clock)."""

    def __init__(self) -> None:
        self.ahead = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utc_now() + self.ahead

    def advance(self, by: dt.timedelta) -> None:
        self.ahead += by
