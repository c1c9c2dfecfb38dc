"""Searches answered by pair rows (a token and a date, search/pairs.py) find what the two
parameters' own rows find: every form of the token, `ge` and `gt`, several codings, and
after updates and deletions. The pair rows themselves follow each write."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from sqlalchemy import delete, text
from sqlalchemy.exc import OperationalError

from medicus.core.background import BackgroundUpdateRow
from medicus.core.db import Database, utc_now
from medicus.fhir.background import SEARCH_INDEX
from medicus.fhir.search.pairs import PAIRS
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search_repository import PairRows
from tests.fhir.conftest import Hub
from tests.fhir.test_search import create, search_ids
from tests.support import clients, resources
from tests.support.database import rows
from tests.support.resources import LOINC

OTHER = "http://example.org/codes"


@pytest.fixture
async def labs(hub: Hub) -> dict[str, str]:
    erika = await create(hub, resources.patient("A123456780", "Müller", "Erika", "1964-08-12"))
    made = {
        "new_hb": resources.observation(erika, "718-7", "2026-11-01T10:00:00Z"),
        "old_hb": resources.observation(erika, "718-7", "2024-03-01T10:00:00Z"),
        "new_glucose": resources.observation(erika, "2345-7", "2026-11-02T08:30:00Z"),
        "day_hb": resources.observation(erika, "718-7", "2026-10-15"),
        "two_codings": resources.observation(
            erika,
            "718-7",
            "2026-11-03T09:00:00Z",
            code={"coding": [{"system": LOINC, "code": "718-7"}, {"system": OTHER, "code": "hb"}]},
        ),
        "no_system": resources.observation(
            erika, "718-7", "2026-11-04T09:00:00Z", code={"coding": [{"code": "718-7"}]}
        ),
        "period": resources.observation(
            erika,
            "718-7",
            None,
            effectivePeriod={"start": "2026-09-01T00:00:00Z", "end": "2026-11-30T00:00:00Z"},
        ),
        "preliminary": resources.observation(
            erika, "718-7", "2026-11-05T09:00:00Z", status="preliminary"
        ),
    }
    return {name: await create(hub, resource) for name, resource in made.items()}


async def _found(hub: Hub, **params: str) -> set[str]:
    return set(await search_ids(hub, "/fhir/Observation", _count="100", **params))


async def test_code_and_date_find_what_each_parameter_finds(hub: Hub, labs: dict[str, str]) -> None:
    recent = {"new_hb", "two_codings", "no_system", "period", "preliminary"}
    expected = {labs[name] for name in recent}
    assert await _found(hub, code="718-7", date="ge2026-10-16") == expected
    assert await _found(hub, code=f"{LOINC}|718-7", date="ge2026-10-16") == expected - {
        labs["no_system"]
    }
    assert await _found(hub, code="|718-7", date="ge2026-10-16") == {labs["no_system"]}
    assert await _found(hub, code=f"{OTHER}|hb", date="ge2026-10-16") == {labs["two_codings"]}
    # A day's value is in `ge` that day, not in `gt` it.
    with_day = expected | {labs["day_hb"]}
    assert await _found(hub, code="718-7", date="ge2026-10-15") == with_day
    assert await _found(hub, code="718-7", date="gt2026-10-15") == expected
    # A period that ends after the value is in `ge` it although it starts before.
    assert labs["period"] in await _found(hub, code="718-7", date="ge2026-11-29")
    assert await _found(hub, code="718-7", date="ge2027-01-01") == set()
    assert await _found(hub, code="2345-7", date="ge2026-01-01") == {labs["new_glucose"]}


async def test_status_and_date_with_other_parameters(hub: Hub, labs: dict[str, str]) -> None:
    assert await _found(hub, status="preliminary", date="ge2026-01-01") == {labs["preliminary"]}
    found = await _found(hub, status="final", date="ge2026-11-02", code="2345-7")
    assert found == {labs["new_glucose"]}
    # Alternatives and other prefixes are answered by the parameters' own rows.
    both = await _found(hub, code="718-7,2345-7", date="ge2026-11-02")
    recent = ("new_glucose", "two_codings", "no_system", "period", "preliminary")
    assert both == {labs[name] for name in recent}
    assert await _found(hub, code="718-7", date="lt2024-12-31") == {labs["old_hb"]}


async def test_pair_rows_follow_updates_and_deletions(hub: Hub, labs: dict[str, str]) -> None:
    token = await hub.token()
    moved = resources.observation(None, "2345-7", "2027-02-01T00:00:00Z", id=labs["new_hb"])
    await clients.put(hub.http, token, moved)
    assert await _found(hub, code="2345-7", date="ge2027-01-01") == {labs["new_hb"]}
    assert await _found(hub, code="718-7", date="ge2026-11-01T10:00:00Z") == {
        labs[name] for name in ("two_codings", "no_system", "period", "preliminary")
    }
    deleted = await hub.http.delete(f"/fhir/Observation/{labs['new_hb']}", headers=token)
    assert deleted.status_code in (200, 204)
    assert await _found(hub, code="2345-7", date="ge2027-01-01") == set()
    left = await rows(
        hub.platform,
        "SELECT count(*) FROM fhir_token_date t JOIN fhir_resource r ON r.rid = t.rid"
        " WHERE r.fhir_id = :id",
        id=labs["new_hb"],
    )
    assert left == [(0,)]
    pairs = await rows(
        hub.platform,
        "SELECT t.pair, t.system, t.code FROM fhir_token_date t"
        " JOIN fhir_resource r ON r.rid = t.rid WHERE r.fhir_id = :id ORDER BY 1, 2, 3",
        id=labs["two_codings"],
    )
    assert pairs == [
        ("code+date", OTHER, "hb"),
        ("code+date", LOINC, "718-7"),
        ("status+date", "", "final"),
    ]


async def test_every_bounded_prefix_finds_what_each_parameter_finds(
    hub: Hub, labs: dict[str, str]
) -> None:
    """`lt`, `le`, `eq`, `sa`, `eb` (a range of the pair rows by the date's start or end)
    find what the parameters' own rows find; a code given twice (`718-7,718-7`, a list of
    values, which pairs do not answer) is answered by those rows."""
    days = ("2026-10-15", "2026-11", "2026-11-30", "2026-11-01T10:00:00Z", "2024", "2026")
    for prefix in ("lt", "le", "eq", "sa", "eb", "ge", "gt", ""):
        for day in days:
            date = f"{prefix}{day}"
            paired = await _found(hub, code="718-7", date=date)
            assert paired == await _found(hub, code="718-7,718-7", date=date), date
    assert await _found(hub, code="718-7", date="lt2026-10-16") == {
        labs[name] for name in ("old_hb", "day_hb", "period")
    }
    assert await _found(hub, code="718-7", date="eq2026-10-15") == {labs["day_hb"]}
    assert await _found(hub, code="718-7", date="eb2024-04") == {labs["old_hb"]}
    assert await _found(hub, status="preliminary", date="le2026-11-05") == {labs["preliminary"]}


def test_each_pair_is_a_token_and_a_date_with_rows_of_their_own() -> None:
    """A pair's rows are made from its parameters' own rows: a union or alias has none."""
    for resource_type, pairs in PAIRS.items():
        every = parameters_of(resource_type)
        for token, date in pairs:
            assert (every[token].type, every[token].members) == ("token", ())
            assert (every[date].type, every[date].members) == ("date", ())


async def _index_update(hub: Hub, pending: bool) -> None:
    """Schedule `fhir.search_index` (leased by another process, so that nothing here runs
    it) or finish it."""
    async with hub.platform.database.transaction() as session:
        await session.execute(delete(BackgroundUpdateRow))
        if pending:
            session.add(
                BackgroundUpdateRow(
                    name=SEARCH_INDEX,
                    depends_on="[]",
                    progress="{}",
                    batches=0,
                    items=0,
                    scheduled_at=utc_now(),
                    lease_owner="another-server",
                    lease_until=utc_now() + dt.timedelta(hours=1),
                )
            )


async def test_pair_rows_answer_only_once_the_index_update_has_finished(
    hub: Hub, labs: dict[str, str]
) -> None:
    """Resources stored before migration 0024 have no pair rows until `fhir.search_index`
    reaches them: until it has finished, their parameters' own rows answer the search."""
    now = [0.0]
    hub.platform.fhir.service.pair_rows = PairRows(hub.platform.database, 5.0, lambda: now[0])
    await _index_update(hub, pending=True)
    async with hub.platform.database.transaction() as session:
        await session.execute(
            text(
                "DELETE FROM fhir_token_date WHERE rid = "
                "(SELECT rid FROM fhir_resource WHERE fhir_id = :id)"
            ),
            {"id": labs["new_hb"]},
        )
    assert labs["new_hb"] in await _found(hub, code="718-7", date="ge2026-10-16")
    await _index_update(hub, pending=False)
    now[0] = 4.0  # asked at most every 5 seconds while pending
    assert labs["new_hb"] in await _found(hub, code="718-7", date="ge2026-10-16")
    now[0] = 5.0  # finished: the pair rows answer (and this one has none any more)
    assert labs["new_hb"] not in await _found(hub, code="718-7", date="ge2026-10-16")
    assert labs["two_codings"] in await _found(hub, code="718-7", date="ge2026-10-16")
    await _index_update(hub, pending=True)
    now[0] = 100.0  # seen finished once, never asked again
    assert labs["new_hb"] not in await _found(hub, code="718-7", date="ge2026-10-16")


class _Unavailable:
    """A database whose every snapshot fails, as during an outage."""

    def snapshot(self) -> Any:
        raise OperationalError("SELECT", {}, ConnectionRefusedError())


async def test_an_outage_is_not_taken_for_a_finished_index_update() -> None:
    now = [0.0]
    gate = PairRows(cast(Database, _Unavailable()), 5.0, lambda: now[0])
    with pytest.raises(OperationalError):
        await gate.complete()
    now[0] = 5.0
    with pytest.raises(OperationalError):
        await gate.complete()
