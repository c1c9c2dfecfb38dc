"""Searches without `_sort` that a range drives come in the order of its index (ordering.py):
a date range the latest date first, a name alphabetically; each resource once, at its best
row, whatever number of rows match; walks by `next`, by `previous` and by `_offset` see every
match once; totals count resources, not rows."""

from __future__ import annotations

import pytest

from medicus.fhir.search.ordering import Ordering, ordering
from medicus.fhir.search.request import SearchRequest
from tests.fhir.conftest import Hub
from tests.fhir.test_search import create
from tests.fhir.test_search_paging import _get, _ids, walk, walk_back
from tests.support import resources

LOINC = "http://loinc.org"


@pytest.mark.parametrize(
    ("resource_type", "parameters", "expected"),
    [
        ("Patient", [("birthdate", "ge2010-01-01")], ("date", "high", True)),
        ("Patient", [("birthdate", "gt2010")], ("date", "high", True)),
        ("Patient", [("birthdate", "eb2010")], ("date", "high", True)),
        ("Patient", [("birthdate", "lt1950")], ("date", "low", True)),
        ("Patient", [("birthdate", "1964-05-17")], ("date", "low", True)),
        ("Patient", [("birthdate", "sa2020")], ("date", "low", True)),
        ("Patient", [("family", "Mül")], ("string", "value", False)),
        ("Patient", [("name:exact", "Müller")], ("string", "value", False)),
        ("Patient", [("family", "Mül"), ("gender", "female")], ("string", "value", False)),
        ("Observation", [("code", f"{LOINC}|718-7"), ("date", "ge2024")], ("date", "high", True)),
        ("Observation", [("status", "final"), ("date", "le2024")], ("date", "low", True)),
        ("Patient", [("birthdate", "ne2010")], None),
        ("Patient", [("birthdate", "ap2010")], None),
        ("Patient", [("birthdate", "ge2010,lt1950")], None),
        ("Patient", [("family:contains", "ül")], None),
        ("Patient", [("family", "Mül"), ("_sort", "birthdate")], None),
        ("Patient", [("family", "Mül"), ("identifier", "x|1")], None),
        ("Patient", [("_lastUpdated", "ge2024")], None),
        ("Patient", [], None),
        ("Observation", [("subject", "Patient/1"), ("date", "ge2024")], None),
        ("Observation", [("code", f"{LOINC}|718-7")], None),
    ],
)
def test_which_searches_their_driving_index_orders(
    resource_type: str, parameters: list[tuple[str, str]], expected: tuple[str, str, bool] | None
) -> None:
    found = ordering(SearchRequest(resource_type, parameters))
    if expected is None:
        assert found is None
    else:
        assert isinstance(found, Ordering)
        assert (found.kind, found.column, found.descending) == expected


def _patient(family: str, birth: str, *more_families: str) -> dict[str, object]:
    patient = resources.patient(None, family, "Kim", birth)
    names = patient["name"]
    assert isinstance(names, list)
    names += [{"family": other, "use": "old"} for other in more_families]
    return patient


async def test_birth_dates_come_latest_first_and_names_alphabetically(hub: Hub) -> None:
    people = {
        "a": _patient("Müller", "2011-03-01"),
        "b": _patient("Mueller", "2015-07-01", "Müller"),
        "c": _patient("Muller", "1980-01-01"),
        "d": _patient("Müllerschön", "2012-12-31", "Müller", "müller"),
        "e": _patient("Schmidt", "2019-01-01"),
        "f": _patient("Müller", "2013"),
    }
    made = {letter: await create(hub, patient) for letter, patient in people.items()}
    by_birth = _ids([await _get(hub, "/fhir/Patient?birthdate=ge2010-01-01")])
    assert by_birth == [made[letter] for letter in "ebfda"]
    by_name = _ids([await _get(hub, "/fhir/Patient?family=mül")])
    # All at "muller" (b by its second name, d by two of its three), the oldest first.
    assert by_name == [made[letter] for letter in "abcdf"]
    bundle = await _get(hub, "/fhir/Patient?family=Mül&_total=accurate&_count=2")
    assert bundle["total"] == 5


class _PairRowsPending:
    """The gate of pair rows while the index update that writes them is pending."""

    async def complete(self) -> bool:
        return False


@pytest.mark.parametrize("pairs", [True, False])
@pytest.mark.parametrize(
    "search",
    [
        "Patient?birthdate=ge2000-01-01",
        "Patient?birthdate=lt2030",
        "Patient?family=Wal",
        "Patient?family=Wal&gender=female",
        "Observation?code=718-7&date=ge2026-01-01",
        "Observation?status=final&date=lt2027",
    ],
)
async def test_walks_see_every_match_once_in_the_index_order(
    hub: Hub, search: str, pairs: bool
) -> None:
    """Ties on the date, names and codes matching twice: walks forwards, backwards and by
    offset give the order of one page with everything, with pair rows and without."""
    if not pairs:
        hub.platform.fhir.service.pair_rows = _PairRowsPending()  # type: ignore[assignment]
    for number in range(9):
        family = ["Walter", "Wallner", "Walz"][number % 3]
        patient = _patient(family, f"20{10 + number % 4}-01-01", *(["Walter"] * (number % 2)))
        patient["gender"] = "female" if number % 2 else "male"
        subject = await create(hub, patient)
        when = f"2026-0{1 + number % 3}-15T10:00:00Z"
        observation = resources.observation(subject, "718-7", when)
        codings = observation["code"]["coding"]  # type: ignore[index]
        codings.append({"system": "http://example.org/lab", "code": "718-7"})
        await create(hub, observation)
    everything = _ids([await _get(hub, f"/fhir/{search}&_count=100")])
    assert everything
    assert len(everything) == len(set(everything))
    for size in (1, 2, 4):
        pages = await walk(hub, f"/fhir/{search}&_count={size}")
        assert _ids(pages) == everything, size
        assert _ids(await walk_back(hub, pages[-1])) == _ids(pages[:-1]), size
        offsets = [
            await _get(hub, f"/fhir/{search}&_count={size}&_offset={offset}")
            for offset in range(0, len(everything), size)
        ]
        assert _ids(offsets) == everything, size
    counted = await _get(hub, f"/fhir/{search}&_summary=count")
    assert counted["total"] == len(everything)
