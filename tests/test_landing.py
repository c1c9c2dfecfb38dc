"""`/` leads browsers to the portal and scripts to the entry points."""

from __future__ import annotations

import httpx


async def test_a_browser_is_sent_to_the_portal_and_from_there_to_the_login(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 303
    assert page.headers["location"] == "/portal"
    portal = await client.get("/portal", headers={"Accept": "text/html"})
    assert portal.status_code == 303
    assert portal.headers["location"] == "/login?next=%2Fportal"


async def test_the_landing_answers_scripts_with_json_links(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code == 200
    links = answer.json()["links"]
    assert links["login"] == "http://127.0.0.1:8080/login"
    assert links["docs"] == "http://127.0.0.1:8080/docs"
    assert links["fhir"] == "http://127.0.0.1:8080/fhir"
    assert links["portal"] == "http://127.0.0.1:8080/portal"
    for name in ("login", "docs", "capabilities"):
        path = links[name].removeprefix("http://127.0.0.1:8080")
        assert (await client.get(path)).status_code == 200, name
