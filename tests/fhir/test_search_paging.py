"""Keyset paging: `next` links carry a cursor, so that walking them returns every resource
exactly once while others are created and updated in between, in the order `_sort` asks for
across ties and missing values; `_offset` still works; malformed, altered and foreign cursors
are a 400, and a cursor never widens what a search may return."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from medicus.core.crypto import SecretBox
from medicus.fhir.models import FhirResourceRow
from medicus.fhir.search import paging
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.sorting import SortKey
from tests.fhir.conftest import Hub
from tests.fhir.test_search import create
from tests.support import resources


def _patient(family: str | None, given: str, birth: str | None) -> dict[str, object]:
    return resources.patient(None, family, given, birth, gender="other")


def _observation(code: str, value: float | None, when: str | None) -> dict[str, object]:
    """An Observation without a subject (None: without a value, without a time)."""
    measured = {} if value is None else {"valueQuantity": {"value": value, "unit": "g/dL"}}
    return resources.observation(None, code, when, **measured)


def _link(bundle: dict[str, object], relation: str) -> str | None:
    links = bundle["link"]
    assert isinstance(links, list)
    return next((link["url"] for link in links if link["relation"] == relation), None)


def _cursor(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_cursor"]


async def _get(hub: Hub, url: str, organisation: str = "hospital-a") -> dict[str, object]:
    response = await hub.http.get(url, headers=await hub.token(organisation=organisation))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def walk(
    hub: Hub, url: str, between: Callable[[], Awaitable[None]] | None = None
) -> list[dict[str, object]]:
    """Every page of a search by its `next` links (`between`: run before following one)."""
    pages: list[dict[str, object]] = []
    following: str | None = url
    while following:
        assert len(pages) < 100, "the walk does not end"
        pages.append(await _get(hub, following))
        following = _link(pages[-1], "next")
        if following and between:
            await between()
    return pages


def _ids(pages: list[dict[str, object]], mode: str = "match") -> list[str]:
    return [
        entry["resource"]["id"]
        for page in pages
        for entry in page.get("entry", [])  # type: ignore[attr-defined]
        if entry["search"]["mode"] == mode
    ]


@pytest.fixture
async def crowd(hub: Hub) -> list[str]:
    """Patients with tied and missing names and birth dates, in the order they were created."""
    people = [
        ("Adler", "Bert", "1980-05-05"),
        ("Meier", "Anna", None),
        ("Adler", "Carl", "1980-05-05"),
        (None, "Dora", "1975-01-01"),
        ("Zeller", "Emil", "1990-01-01"),
        ("Meier", "Anna", "1960-02-02"),
        ("Adler", "Bert", None),
        (None, "Gina", None),
        ("Berg", "Hans", "1980-05-05"),
    ]
    return [await create(hub, _patient(*person)) for person in people]


@pytest.mark.parametrize("sort", ["", "family", "-birthdate,given"])
async def test_a_walk_sees_every_resource_once_while_others_are_written(
    hub: Hub, crowd: list[str], sort: str
) -> None:
    """Between the first pages, a resource that sorts first and one that sorts last are
    created and two of those already there are updated (not in a sort value): nothing is seen
    twice or missed. The ones sorting last are reached; those sorting first (unsorted: every
    new one, as the newest come first) are behind the walk. With offsets, every resource
    created or updated in front of the walk shifted the later pages."""
    created_first: list[str] = []
    created_last: list[str] = []
    headers = await hub.token()

    async def write() -> None:
        if len(created_first) == 4:
            return
        created_first.append(await create(hub, _patient("Aachen", "Aaron", "2020-01-01")))
        created_last.append(await create(hub, _patient(None, "Zora", None)))
        for fhir_id in (crowd[len(created_first) - 1], crowd[-len(created_first)]):
            current = (await hub.http.get(f"/fhir/Patient/{fhir_id}", headers=headers)).json()
            current["gender"] = "unknown" if current["gender"] == "other" else "other"
            answer = await hub.http.put(
                f"/fhir/Patient/{fhir_id}", content=orjson.dumps(current), headers=headers
            )
            assert answer.status_code == 200, answer.text

    pages = await walk(hub, f"/fhir/Patient?_count=2{sort and '&_sort=' + sort}", write)
    seen = _ids(pages)
    assert len(created_first) == 4
    assert len(seen) == len(set(seen)), "a resource was seen twice"
    assert sorted(seen) == sorted(crowd + (created_last if sort else []))


@pytest.mark.parametrize(
    "sort",
    [
        "family,-birthdate",
        "-family,birthdate,-given",
        "birthdate",
        "-birthdate",
        "given,family",
        "_id",
        "-_id",
        "-_lastUpdated",
    ],
)
async def test_walks_keep_the_sort_order_across_ties_and_missing_values(
    hub: Hub, crowd: list[str], sort: str
) -> None:
    everything = _ids([await _get(hub, f"/fhir/Patient?_count=100&_sort={sort}")])
    assert sorted(everything) == sorted(crowd)
    for size in (1, 2, 4):
        assert _ids(await walk(hub, f"/fhir/Patient?_count={size}&_sort={sort}")) == everything


async def test_sorted_walks_over_tokens_quantities_and_dates(hub: Hub) -> None:
    rows = [
        ("718-7", 12.5, "2026-11-01T10:00:00Z"),
        ("718-7", None, "2026-11-01"),
        ("2345-7", 12.5, None),
        ("718-7", 9.0, "2026-11-01T10:00:00Z"),
        ("2345-7", None, None),
        ("718-7", 12.5, "2025"),
        ("2345-7", 110.0, "2026-11-01T10:00:00Z"),
    ]
    made = [await create(hub, _observation(*row)) for row in rows]
    by = dict(zip("abcdefg", made, strict=True))
    expected = {
        # ties on both keys: the older resource first; no value: last, either way
        "code,-value-quantity": "gceafdb",
        "-value-quantity,date": "gfacdbe",
        "date,code": "fbgadce",
        "-date,-code": "badgfce",
    }
    for sort, order in expected.items():
        for size in (1, 3, 100):
            pages = await walk(hub, f"/fhir/Observation?_count={size}&_sort={sort}")
            assert _ids(pages) == [by[letter] for letter in order], (sort, size)
            assert _ids(await walk_back(hub, pages[-1])) == _ids(pages[:-1]), (sort, size)


async def walk_back(hub: Hub, last: dict[str, object]) -> list[dict[str, object]]:
    """The pages before `last` by their `previous` links, in the search's order."""
    pages: list[dict[str, object]] = []
    preceding = _link(last, "previous")
    while preceding:
        assert len(pages) < 100, "the walk does not end"
        pages.insert(0, await _get(hub, preceding))
        preceding = _link(pages[0], "previous")
    return pages


@pytest.mark.parametrize("sort", ["", "family", "-birthdate,given", "birthdate,-family"])
async def test_previous_links_walk_back_over_the_same_pages(
    hub: Hub, crowd: list[str], sort: str
) -> None:
    """Backwards across ties and missing values (which come last in either direction), the
    pages of the walk forwards, each with its resources in the search's order; from a page
    reached backwards, `next` leads forwards again."""
    for size in (1, 2, 4):
        url = (
            f"/fhir/Patient?_count={size}&_sort={sort}" if sort else f"/fhir/Patient?_count={size}"
        )
        forwards = await walk(hub, url)
        assert _link(forwards[0], "previous") is None
        backwards = await walk_back(hub, forwards[-1])
        assert [_ids([page]) for page in backwards] == [_ids([page]) for page in forwards[:-1]]
        assert _link(backwards[0], "previous") is None
        onwards = await walk(hub, str(_link(backwards[0], "next")))
        assert _ids(onwards) == _ids(forwards[1:])


async def test_eight_sort_keys_page_both_ways_and_nine_are_refused(
    hub: Hub, crowd: list[str]
) -> None:
    """A page after or before a resource compares every key: 20 keys were an SQLite error
    (a 500) on the page before, 40 on the page after, 300 a recursion error."""
    keys = ",".join(["family", "-birthdate", "given", "-_id"] * 2)
    pages = await walk(hub, f"/fhir/Patient?_count=2&_sort={keys}")
    assert sorted(_ids(pages)) == sorted(crowd)
    assert _ids(await walk_back(hub, pages[-1])) == _ids(pages[:-1])
    response = await hub.http.get(
        "/fhir/Patient", params={"_sort": f"{keys},gender"}, headers=await hub.token()
    )
    assert response.status_code == 400
    assert ["_sort"] in [issue.get("expression") for issue in response.json()["issue"]]


async def test_offsets_still_work_and_lead_on_to_cursors(hub: Hub, crowd: list[str]) -> None:
    newest_first = crowd[::-1]
    page = await _get(hub, "/fhir/Patient?_count=3&_offset=3")
    assert _ids([page]) == newest_first[3:6]
    previous, following = _link(page, "previous"), _link(page, "next")
    assert "_offset=0" in str(previous)
    assert "_cursor=" in str(following)
    assert following is not None
    assert "_offset" not in following
    rest = await walk(hub, following)
    assert _ids(rest) == newest_first[6:]
    assert "_cursor=" in str(_link(rest[0], "previous"))
    assert "_cursor=" in str(_link(rest[0], "self"))


async def test_search_by_post_pages_on_by_get(hub: Hub, crowd: list[str]) -> None:
    response = await hub.http.post(
        "/fhir/Patient/_search",
        data={"family": "adler", "_sort": "given", "_count": "2"},
        headers={**await hub.token(), "content-type": "application/x-www-form-urlencoded"},
    )
    following = _link(response.json(), "next")
    assert following is not None
    pages = [response.json(), *await walk(hub, following)]
    assert _ids(pages) == [crowd[0], crowd[6], crowd[2]]


async def test_totals_and_includes_on_cursor_pages(hub: Hub) -> None:
    people = [await create(hub, _patient("Kern", str(number), None)) for number in range(3)]
    observations = []
    for number, person in enumerate(people * 2):
        observation = _observation("718-7", float(number), None)
        observation["subject"] = {"reference": f"Patient/{person}"}
        observations.append(await create(hub, observation))
    url = "/fhir/Observation?_count=2&_include=Observation:subject&_total=accurate"
    pages = await walk(hub, url)
    assert [page["total"] for page in pages] == [6, 6, 6]
    assert sorted(_ids(pages)) == sorted(observations)
    assert [sorted(_ids([page], "include")) for page in pages] == [
        sorted(people[1:]),
        sorted([people[0], people[2]]),
        sorted(people[:2]),
    ]
    unasked = await walk(hub, "/fhir/Observation?_count=4")
    assert "total" not in unasked[1]  # a cursor page cannot tell where it is: not counted


PURPOSE = "fhir-search-cursor"


def _box(hub: Hub) -> SecretBox:
    """The server's own sealing, as only someone holding the platform secret has it."""
    return SecretBox(hub.platform.settings.effective_secret_key())


def _forged(hub: Hub, values: Sequence[object], parameters: list[tuple[str, str]]) -> str:
    """A cursor of hospital-a's Patient search with `parameters`, sealed as the server seals,
    around any JSON `values` (keys of kind `text` encode them unchanged)."""
    keys = [SortKey(FhirResourceRow.rid, False, "text")] * len(values)
    request = SearchRequest("Patient", parameters)
    return paging.cursor(request, "hospital-a", keys, values, _box(hub))


def _payload(hub: Hub, cursor: str) -> list[object]:
    return list(orjson.loads(_box(hub).decrypt(PURPOSE, cursor)))


def _encoded(hub: Hub, payload: list[object]) -> str:
    return _box(hub).encrypt(PURPOSE, orjson.dumps(payload))


async def test_cursors_do_not_show_patient_data(hub: Hub, crowd: list[str]) -> None:
    """Sort values are patient data; a cursor is sealed, and sealed anew each time."""
    page = await _get(hub, "/fhir/Patient?_count=1&_sort=family")
    cursor = _cursor(str(_link(page, "next")))
    family = page["entry"][0]["resource"]["name"][0]["family"]
    assert family.lower() in _payload(hub, cursor)  # the normalised sort value
    assert family.lower() not in cursor.lower()
    assert family.lower().encode() not in base64.urlsafe_b64decode(cursor.partition(".")[2])
    again = _cursor(str(_link(await _get(hub, "/fhir/Patient?_count=1&_sort=family"), "next")))
    assert again != cursor
    assert _payload(hub, again) == _payload(hub, cursor)


async def test_malformed_and_altered_cursors_are_400(hub: Hub, crowd: list[str]) -> None:
    first = await _get(hub, "/fhir/Patient?_count=2&_sort=family,-birthdate")
    cursor = _cursor(str(_link(first, "next")))
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    family, birth, rid, checksum = _payload(hub, cursor)
    assert isinstance(rid, int)
    sorted_by = [("_sort", "family,-birthdate")]
    bad = [
        "",
        "!!!",
        "a",
        cursor[:-3],
        cursor + "AA",
        flipped,
        "x" * 50_000,
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b"[]").decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "1." + cursor.partition(".")[2],
        "2." + cursor.partition(".")[2],
        SecretBox(b"another platform's secret key!!!").encrypt(PURPOSE, b"[1]"),
        _box(hub).encrypt("another purpose", orjson.dumps([family, birth, rid, checksum])),
        _encoded(hub, [family, birth, rid - 1, checksum]),
        _encoded(hub, ["x", family, birth, rid, checksum]),
        _encoded(hub, [family, birth, rid]),
        _forged(hub, ["adler", "1980-05-05T00:00:00", 1], sorted_by),  # no time zone
        _forged(hub, ["ad\x00ler", None, 1], sorted_by),
        _forged(hub, ["adler", None, 2**63], sorted_by),
        _forged(hub, ["adler", None, 0], sorted_by),
        _forged(hub, ["adler", None, "1"], sorted_by),
        _forged(hub, ["adler", None, True], sorted_by),
        _forged(hub, [None, "1980", 1], sorted_by),
        _forged(hub, ["adler", 5, 1], sorted_by),
    ]
    for value in bad:
        response = await hub.http.get(
            "/fhir/Patient",
            params={"_count": "2", "_sort": "family,-birthdate", "_cursor": value},
            headers=await hub.token(),
        )
        assert response.status_code == 400, (value, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert ["_cursor"] in [issue.get("expression") for issue in outcome["issue"]]
    for extra in ("_cursor", "_offset"):
        twice = f"/fhir/Patient?_count=2&_sort=family,-birthdate&_cursor={cursor}&{extra}=0"
        response = await hub.http.get(twice, headers=await hub.token())
        assert response.status_code == 400, response.text


async def test_a_cursor_of_another_search_or_organisation_reveals_nothing(
    hub: Hub, crowd: list[str]
) -> None:
    theirs = [await create(hub, _patient("Adler", "Ida", None), "hospital-b") for _ in range(3)]
    their_page = await _get(hub, "/fhir/Patient?_count=1", organisation="hospital-b")
    their_cursor = _cursor(str(_link(their_page, "next")))
    ours = _cursor(str(_link(await _get(hub, "/fhir/Patient?_count=1&_sort=family"), "next")))
    for url in (
        f"/fhir/Patient?_count=1&_cursor={their_cursor}",  # the same search, another hospital
        f"/fhir/Patient?_count=1&_sort=birthdate&_cursor={ours}",
        f"/fhir/Patient?_count=1&_sort=family&family=adler&_cursor={ours}",
        f"/fhir/Observation?_count=1&_sort=code&_cursor={ours}",
    ):
        response = await hub.http.get(url, headers=await hub.token())
        assert response.status_code == 400, response.text
        assert "entry" not in response.json()
    # Forged with the checksum recomputed, a position only bounds the caller's own results.
    for values in ([2**62], [1]):
        forged = _forged(hub, values, [])
        pages = await walk(hub, f"/fhir/Patient?_count=100&_cursor={forged}")
        assert set(_ids(pages)) <= set(crowd)
        assert not set(_ids(pages)) & set(theirs)
