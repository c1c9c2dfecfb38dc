"""`/` leads somewhere useful until the portal exists."""

from __future__ import annotations

import httpx


async def test_the_landing_page_links_to_login_docs_and_fhir(client: httpx.AsyncClient) -> None:
    page = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    for path in ("/login", "/docs", "/fhir/metadata"):
        assert f'href="http://127.0.0.1:8080{path}"' in page.text


async def test_the_landing_answers_scripts_with_json_links(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code == 200
    links = answer.json()["links"]
    assert links["login"] == "http://127.0.0.1:8080/login"
    assert links["docs"] == "http://127.0.0.1:8080/docs"
    assert links["fhir"] == "http://127.0.0.1:8080/fhir"
    for name in ("login", "docs", "capabilities"):
        path = links[name].removeprefix("http://127.0.0.1:8080")
        assert (await client.get(path)).status_code == 200, name
