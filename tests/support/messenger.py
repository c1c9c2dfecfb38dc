"""One real Synapse for the whole test session, started by medicus's own code (as `medicus
serve` starts it), and settings of a medicus in front of it."""

from __future__ import annotations

from pathlib import Path

from medicus.messenger.homeserver import Homeserver
from medicus.settings import Settings
from tests.conftest import make_settings

SERVER_NAME = "medicus.test"
SECRET = "messenger-tests-platform-secret-0123456789"
"""The platform secret of every medicus of the tests that talks to the session's Synapse:
Synapse checks login tokens with the key derived from it."""


def messenger_settings(
    tmp_path: Path, database_url: str, homeserver: Homeserver, **overrides: object
) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        **{
            "messenger": "external",
            "messenger_synapse_url": homeserver.synapse_url,
            "messenger_server_name": homeserver.server_name,
            "messenger_max_upload_mb": homeserver.max_upload_bytes // (1024 * 1024),
            "secret_key": SECRET,
            **overrides,
        },
    )
