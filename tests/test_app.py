"""The app's start: what exists once a server process has started is kept out of the garbage
collector's full passes (a pass over everything stalled requests; benchmarks/web.py)."""

from __future__ import annotations

import gc

from medicus.app import create_app
from medicus.platform import Platform


async def test_a_started_server_freezes_what_it_built(fresh_platform: Platform) -> None:
    app = create_app(fresh_platform.settings, fresh_platform)
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
