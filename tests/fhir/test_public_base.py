"""URLs in answers (paging links, fullUrls, Location) are built on the configured public base
(`MEDICUS_PUBLIC_URL`), never on the `Host` a request names: a forged Host must not put
another server's address into links that clients follow with their token."""

from __future__ import annotations

import orjson

from tests.fhir.conftest import Hub

FORGED = {"host": "attacker.example"}


async def test_links_follow_the_public_url_not_the_host_header(hub: Hub) -> None:
    base = f"{hub.platform.settings.public_url}/fhir"
    headers = {**await hub.token(), **FORGED}
    created = []
    for family in ("Eins", "Zwei", "Drei"):
        patient = {"resourceType": "Patient", "name": [{"family": family}]}
        answer = await hub.http.post(
            "/fhir/Patient", content=orjson.dumps(patient), headers=headers
        )
        assert answer.headers["location"].startswith(f"{base}/Patient/")
        created.append(answer.json()["id"])
    page = await hub.http.get("/fhir/Patient", params={"_count": "1"}, headers=headers)
    links = {link["relation"]: link["url"] for link in page.json()["link"]}
    assert set(links) == {"self", "next"}
    following = await hub.http.get(links["next"], headers=headers)
    links.update({f"2:{link['relation']}": link["url"] for link in following.json()["link"]})
    assert "2:previous" in links
    answers = [page.json(), following.json()]
    history = await hub.http.get(f"/fhir/Patient/{created[0]}/_history", headers=headers)
    everything = await hub.http.get(f"/fhir/Patient/{created[0]}/$everything", headers=headers)
    answers += [history.json(), everything.json()]
    links.update({f"all:{link['url']}": link["url"] for link in everything.json()["link"]})
    urls = list(links.values()) + [e["fullUrl"] for a in answers for e in a.get("entry", [])]
    assert len(urls) > 6
    assert all(url.startswith(f"{base}/") for url in urls), urls
    assert not any("attacker" in url for url in urls)
