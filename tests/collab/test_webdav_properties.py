"""WebDAV clients' own properties (RFC 4918 dead properties, `collab.properties`): Windows'
time stamps after an upload are kept and read back, move with their file and are copied
with it, are bounded, and only editors set them. And litmus, the WebDAV servers' test suite
(Debian's `litmus`: basic, copymove, props, locks, http), passes every test against a space."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from medicus.collab.properties import MAX_PROPERTIES
from tests.collab.conftest import Region
from tests.collab.dav_clients import app_password, dav, dav_login, debian_client
from tests.support import clients, resources
from tests.support.database import rows
from tests.support.served import serving

WINDOWS = "urn:schemas-microsoft-com:"
SET_TIMES = f"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="{WINDOWS}"><D:set><D:prop>
<Z:Win32CreationTime>Thu, 03 Dec 2026 10:00:00 GMT</Z:Win32CreationTime>
<Z:Win32LastModifiedTime>Thu, 03 Dec 2026 10:05:00 GMT</Z:Win32LastModifiedTime>
<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>
</D:prop></D:set></D:propertyupdate>"""
ASK_TIME = f"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="{WINDOWS}"><D:prop><Z:Win32LastModifiedTime/>
</D:prop></D:propfind>"""


def _set(name: str, value: str) -> str:
    return (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test:">'
        f"<D:set><D:prop><Z:{name}>{value}</Z:{name}></D:prop></D:set></D:propertyupdate>"
    )


XXE = """<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY secret SYSTEM "file:///etc/passwd"><!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test:"><D:set><D:prop>
<Z:leak>&secret;</Z:leak><Z:laughs>&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;</Z:laughs>
</D:prop></D:set></D:propertyupdate>"""


def _statuses(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 207, answer.text
    return re.findall(r"<D:status>HTTP/1.1 (\d+)", answer.text)


async def test_windows_time_stamps_are_kept_moved_and_copied_with_the_file(
    region: Region,
) -> None:
    await region.space("Befunde")
    alice = await dav_login(region, region.alice)
    http = region.http
    assert (await dav(http, "PUT", "Befunde/Brief.docx", alice, content=b"x")).status_code == 201
    patched = await dav(http, "PROPPATCH", "Befunde/Brief.docx", alice, content=SET_TIMES)
    assert _statuses(patched) == ["200"]
    moved = await dav(
        http, "MOVE", "Befunde/Brief.docx", alice, {"Destination": "/dav/Befunde/Arztbrief.docx"}
    )
    assert moved.status_code == 201
    copied = await dav(
        http, "COPY", "Befunde/Arztbrief.docx", alice, {"Destination": "/dav/Befunde/Kopie.docx"}
    )
    assert copied.status_code == 201
    for path in ("Befunde/Arztbrief.docx", "Befunde/Kopie.docx"):
        found = await dav(http, "PROPFIND", path, alice, {"Depth": "0"}, content=ASK_TIME)
        assert _statuses(found) == ["200"], path
        assert "Thu, 03 Dec 2026 10:05:00 GMT</" in found.text
    listing = await dav(http, "PROPFIND", "Befunde", alice, {"Depth": "1"})
    assert listing.text.count("00000020") == 2, "a folder's listing has its files' own ones"


async def test_properties_are_bounded_and_set_by_editors_only(region: Region) -> None:
    space = await region.space("Grenzen")
    alice = await dav_login(region, region.alice)
    http = region.http
    await dav(http, "PUT", "Grenzen/a.txt", alice, content=b"a")
    too_long = await dav(http, "PROPPATCH", "Grenzen/a.txt", alice, content=_set("v", "x" * 20000))
    assert _statuses(too_long) == ["400"]
    for number in range(MAX_PROPERTIES):
        kept = await dav(http, "PROPPATCH", "Grenzen/a.txt", alice, content=_set(f"p{number}", "1"))
        assert _statuses(kept) == ["200"]
    one_more = await dav(http, "PROPPATCH", "Grenzen/a.txt", alice, content=_set("last", "1"))
    assert _statuses(one_more) == ["507"]
    replaced = await dav(http, "PROPPATCH", "Grenzen/a.txt", alice, content=_set("p0", "2"))
    assert _statuses(replaced) == ["200"], "changing one that is there is no new one"
    changed = await http.put(
        f"/collab/spaces/{space['id']}/members",
        json={"email": region.bob.email, "role": "viewer"},
        headers=region.alice.headers,
    )
    assert changed.status_code == 200
    bob = await dav_login(region, region.bob)
    refused = await dav(http, "PROPPATCH", "Grenzen/a.txt", bob, content=_set("p1", "3"))
    assert _statuses(refused) == ["403"]
    read = await dav(http, "PROPFIND", "Grenzen/a.txt", bob, {"Depth": "0"})
    assert ">2</" in read.text, "a viewer reads them"


def _litmus_or_skip() -> str:
    found = shutil.which("litmus")
    if found is None:
        if os.environ.get("CI"):
            raise RuntimeError(
                "CI needs Debian's litmus for the WebDAV tests (make webdav-clients)"
            )
        pytest.skip("Debian's litmus is not installed (make webdav-clients)")
    return found


async def test_litmus_passes_every_test(region: Region, tmp_path: Path) -> None:
    litmus = debian_client("litmus")
    await region.space("litmus")
    password = await app_password(region, region.alice, "litmus")
    with serving(region.platform.settings) as base_url:
        done = await asyncio.to_thread(
            subprocess.run,
            [litmus, f"{base_url}/dav/litmus/", region.alice.email, password],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            check=False,
        )
    summaries = re.findall(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed", done.stdout)
    assert [suite for suite, _, _ in summaries] == ["basic", "copymove", "props", "locks", "http"]
    failed = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert failed == [], done.stdout[-3000:]
    assert all(run == passed for _, run, passed in summaries), summaries
    assert done.returncode == 0, done.stdout[-3000:]


async def test_xml_entities_are_not_resolved(region: Region) -> None:
    """A property's value never reads a file of the server nor expands entities."""
    await region.space("XML")
    alice = await dav_login(region, region.alice)
    http = region.http
    await dav(http, "PUT", "XML/a.txt", alice, content=b"a")
    patched = await dav(http, "PROPPATCH", "XML/a.txt", alice, content=XXE)
    assert patched.status_code in (207, 400), patched.text[:300]
    found = await dav(http, "PROPFIND", "XML/a.txt", alice, {"Depth": "0"})
    assert found.status_code == 207
    assert "root:" not in found.text
    assert "a" * 1000 not in found.text


async def test_a_patients_file_gets_properties_only_where_access_allows(region: Region) -> None:
    space = await region.space("Fälle")
    alice = await dav_login(region, region.alice)
    bob = await dav_login(region, region.bob)
    http = region.http
    written = await dav(http, "PUT", "Fälle/CT.txt", alice, content=b"Befund")
    assert written.status_code == 201
    fhir = {**region.alice.headers, **resources.FHIR_JSON}
    patient_id = await clients.create(http, fhir, resources.patient("Erika", "Muster"))
    listing = await http.get(
        f"/collab/spaces/{space['id']}/nodes/root/children", headers=region.alice.headers
    )
    (file_id,) = [child["id"] for child in listing.json()["children"]]
    linked = await http.put(
        f"/collab/spaces/{space['id']}/nodes/{file_id}/patient",
        json={"patient": patient_id},
        headers=region.alice.headers,
    )
    assert linked.status_code == 200, linked.text
    path = quote("Fälle/CT.txt")
    assert _statuses(await dav(http, "PROPPATCH", path, alice, content=SET_TIMES)) == ["200"]
    refused = await dav(http, "PROPPATCH", path, bob, content=SET_TIMES)
    assert refused.status_code == 404, "another hospital's editor without consent"
    await region.platform.audit.seal_all()
    recorded = await rows(
        region.platform,
        "SELECT patients FROM audit_entry WHERE action = 'collab.properties'",
    )
    assert [patient_id in patients for (patients,) in recorded] == [True] * 3, "one a property"
