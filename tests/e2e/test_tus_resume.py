"""A tus upload survives the server process being killed (`kill -9`) in the middle of a PATCH:
started again on the same data directory and database, the server offers the upload at an
offset no further than the bytes sent, a real tus client (tuspy) resumes it, and the stored
object is the source byte for byte."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
from tusclient import client as tus_client

from tests.e2e.conftest import RunningServer, register_backend_service, serving

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PATIENT = 60  # seconds: CI runs two suites at once on two cores


def _sha256_of_object(server: RunningServer, token: str, location: str) -> str:
    digest = hashlib.sha256()
    with httpx.stream(
        "GET",
        f"{server.base_url}{location}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=PATIENT,
    ) as download:
        assert download.status_code == 200, download.read()
        for piece in download.iter_bytes():
            digest.update(piece)
    return digest.hexdigest()


def test_an_upload_resumes_byte_exact_after_the_server_was_killed_mid_patch(
    server: RunningServer, tmp_path: Path
) -> None:
    hub = register_backend_service(
        server, tmp_path, "Klinikum Resume", "260100049", "system/*.cruds"
    )
    token = hub.access_token()
    auth = {"Authorization": f"Bearer {token}", **TUS}
    source = tmp_path / "ct-serie.bin"
    data = os.urandom(50 * MIB + 4321)
    source.write_bytes(data)
    name = base64.b64encode(b"ct-serie.bin").decode()
    created = httpx.post(
        f"{server.base_url}/storage/uploads",
        headers={**auth, "Upload-Length": str(len(data)), "Upload-Metadata": f"filename {name}"},
        timeout=PATIENT,
    )
    assert created.status_code == 201, created.text
    upload_url = f"{server.base_url}{created.headers['location']}"
    stream = {**auth, "Content-Type": "application/offset+octet-stream"}

    first = httpx.patch(
        upload_url,
        content=data[: 10 * MIB + 17],
        headers={**stream, "Upload-Offset": "0"},
        timeout=PATIENT,
    )
    assert first.status_code == 204, first.text
    committed = int(first.headers["upload-offset"])

    sent = committed

    def killed_midway() -> Iterator[bytes]:
        nonlocal sent
        for start in range(committed, len(data), MIB):
            if sent - committed >= 15 * MIB:
                server.process.kill()  # SIGKILL: no shutdown, no cleanup
                server.process.wait(10)
            piece = data[start : start + MIB]
            sent += len(piece)
            yield piece

    with contextlib.suppress(httpx.TransportError):
        httpx.patch(
            upload_url,
            content=killed_midway(),
            headers={**stream, "Upload-Offset": str(committed)},
            timeout=PATIENT,
        )
    assert server.process.poll() is not None

    with serving(server.environment) as again:
        # Another port, so another issuer: the client asks for a new token.
        endpoint = hub.token_endpoint.replace(server.base_url, again.base_url)
        token = dataclasses.replace(hub, server=again, token_endpoint=endpoint).access_token()
        auth = {"Authorization": f"Bearer {token}", **TUS}
        upload_url = upload_url.replace(server.base_url, again.base_url)
        head = httpx.head(upload_url, headers=auth, timeout=PATIENT)
        assert head.status_code == 200, head.headers
        offset = int(head.headers["upload-offset"])
        assert committed <= offset <= sent, (committed, offset, sent)
        uploader = tus_client.TusClient(
            f"{again.base_url}/storage/uploads", headers={"Authorization": f"Bearer {token}"}
        ).uploader(str(source), url=upload_url, chunk_size=8 * MIB)
        assert uploader.offset == offset
        uploader.upload()
        done = httpx.head(upload_url, headers=auth, timeout=PATIENT)
        assert done.headers["upload-offset"] == str(len(data))
        location = done.headers["medicus-object"]
        assert _sha256_of_object(again, token, location) == hashlib.sha256(data).hexdigest()
