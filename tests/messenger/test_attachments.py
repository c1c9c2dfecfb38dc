"""Attachments kept in medicus's storage, not in Synapse's media store: encrypted on the
backend, downloaded only signed in, images their own thumbnails, uploads in one request."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from tests.messenger.conftest import Region


async def _signed_in(region: Region) -> dict[str, str]:
    login = await region.http.post(
        "/_matrix/client/v3/login",
        json={
            "type": "org.matrix.login.jwt",
            "token": (await region.login_token(region.alice))["token"],
        },
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _upload(
    region: Region, headers: dict[str, str], content: bytes, content_type: str, name: str
) -> str:
    answer = await region.http.post(
        f"/_matrix/media/v3/upload?filename={name}",
        content=content,
        headers={**headers, "Content-Type": content_type},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content_uri"])


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_an_attachment_is_kept_encrypted_in_storage_and_not_by_synapse(
    region: Region, synapse_media: Path
) -> None:
    headers = await _signed_in(region)
    marker = b"ROENTGEN-THORAX-" + os.urandom(8).hex().encode()
    content = marker * 1000
    uri = await _upload(region, headers, content, "application/dicom", "thorax.dcm")
    server, media_id = uri.removeprefix("mxc://").split("/")

    answer = await region.http.get(
        f"/_matrix/client/v1/media/download/{server}/{media_id}", headers=headers
    )
    assert answer.content == content
    assert answer.headers["content-type"] == "application/dicom"
    assert "attachment" in answer.headers["content-disposition"]
    assert "thorax.dcm" in answer.headers["content-disposition"]

    objects = region.platform.settings.data_dir / "objects"
    assert list(objects.rglob("*")), "the attachment is an object of storage"
    assert _files_containing(objects, marker) == [], "storage keeps it encrypted"
    assert _files_containing(synapse_media, marker) == [], "Synapse never had it"


async def test_attachments_are_downloaded_signed_in_only(region: Region) -> None:
    headers = await _signed_in(region)
    uri = await _upload(region, headers, b"%PDF-1.7 Befund", "application/pdf", "befund.pdf")
    server, media_id = uri.removeprefix("mxc://").split("/")
    anonymous = await region.http.get(f"/_matrix/client/v1/media/download/{server}/{media_id}")
    assert anonymous.status_code in (401, 404)
    legacy = await region.http.get(f"/_matrix/media/v3/download/{server}/{media_id}")
    assert legacy.status_code == 404
    unknown = await region.http.get(
        f"/_matrix/client/v1/media/download/{server}/nosuchmedia", headers=headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["errcode"] == "M_NOT_FOUND"
    thumbnail = await region.http.get(
        f"/_matrix/client/v1/media/thumbnail/{server}/{media_id}?width=96&height=96",
        headers=headers,
    )
    assert thumbnail.status_code == 404, "a PDF has no thumbnail"


async def test_an_image_is_its_own_thumbnail(region: Region) -> None:
    headers = await _signed_in(region)
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
    uri = await _upload(region, headers, png, "image/png", "punkt.png")
    server, media_id = uri.removeprefix("mxc://").split("/")
    thumbnail = await region.http.get(
        f"/_matrix/client/v1/media/thumbnail/{server}/{media_id}?width=32&height=32",
        headers=headers,
    )
    assert thumbnail.status_code == 200
    assert thumbnail.content == png
    assert thumbnail.headers["content-disposition"].startswith("inline")


async def test_uploads_come_in_one_request_with_their_length(region: Region) -> None:
    headers = await _signed_in(region)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"no length"

    chunked = await region.http.post("/_matrix/media/v3/upload", content=chunks(), headers=headers)
    assert chunked.status_code == 411
    created = await region.http.post("/_matrix/media/v1/create", headers=headers)
    assert created.status_code == 404
    assert created.json()["errcode"] == "M_UNRECOGNIZED"
    anonymous = await region.http.post("/_matrix/media/v3/upload", content=b"x")
    assert anonymous.status_code == 401
