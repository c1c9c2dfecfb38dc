"""The messenger's loop beside the requests: Synapse's account locks follow medicus's
memberships (a suspended user's sessions end within a round), the portal's Matrix devices
are logged out when their browser sessions end (within a round), and used login tokens are
forgotten after a day."""

from __future__ import annotations

import logging

from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.loops import ServerLoop
from medicus.messenger.service import Messenger

ROUND_SECONDS = 10.0
_log = logging.getLogger(__name__)


class MessengerUpkeep(ServerLoop):
    name = "messenger-upkeep"

    def __init__(self, messenger: Messenger, clock: Clock = utc_now) -> None:
        super().__init__()
        self._messenger = messenger
        self._clock = clock

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self._messenger.align_accounts()
                await self._messenger.end_portal_devices()
                await self._messenger.forget_old_login_tokens(self._clock())
            except Exception:  # a round that fails is tried again; the loop must go on
                _log.exception("messenger upkeep round failed")
            await self.rest(ROUND_SECONDS)
