"""WebDAV as the tests speak it: app passwords for the region's colleagues, their Basic
headers, requests with WebDAV's methods, and medicus on a loopback port for the clients that
need a socket (rclone, webdavclient3)."""

from __future__ import annotations

import base64
import os
import shutil
from typing import Any

import httpx
import pytest

from tests.collab.conftest import Colleague, Region
from tests.support.clients import bearer

FULL_SCOPE = "user/*.cruds patient/*.cruds"
"""What a physician's token must allow to make an app password (what the password will)."""


async def app_password(region: Region, who: Colleague, label: str = "Laptop") -> str:
    """A new app password of `who` (through the REST API, with a token of full scope)."""
    token = await bearer(region.platform, who.organisation, subject=who.user_id, scope=FULL_SCOPE)
    made = await region.http.post(
        "/collab/app-passwords",
        json={"label": label},
        headers={"Authorization": token["Authorization"]},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["password"])


def basic(email: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


async def dav_login(region: Region, who: Colleague) -> dict[str, str]:
    """The Basic header of a new app password of `who`."""
    return basic(who.email, await app_password(region, who))


async def dav(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    login: dict[str, str],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    """A WebDAV request as `login` (`path` below /dav/, quoted as it goes on the wire)."""
    return await http.request(method, f"/dav/{path}", headers={**login, **(headers or {})}, **extra)


def debian_client(program: str) -> str:
    """The path of one of Debian's WebDAV clients (`make webdav-clients` installs them);
    the test skips without it, but fails in CI, which must run it."""
    found = shutil.which(program)
    if found is None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs Debian's {program} for the WebDAV tests")
        pytest.skip(f"Debian's {program} is not installed (make webdav-clients)")
    return found
