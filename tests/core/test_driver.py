"""The driver path (point reads, batched inserts) against the real database: the same types and
values as through SQLAlchemy, a failed batch leaves nothing, literal LIMITs are bound."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from medicus.audit.repository import ANY_PENDING, PENDING
from medicus.core.db import Database, Reading


def _row(actor: str, occurred_at: dt.datetime) -> dict[str, object]:
    return {
        "occurred_at": occurred_at,
        "actor": actor,
        "organisation": "hospital-a",
        "action": "fhir.read",
        "target": "Patient/1",
        "outcome": "success",
        "client_address": None,
        "request_id": "r1",
        "detail": "{}",
        "patients": "1",
    }


async def test_inserted_rows_read_back_with_their_types(fresh_database_url: str) -> None:
    database = Database(fresh_database_url)
    moment = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    try:
        assert await database.fetch_one(ANY_PENDING) is None
        await database.insert_many(PENDING, [_row("user:a", moment), _row("user:b", moment)])
        statement = select(PENDING.c.actor, PENDING.c.occurred_at).where(
            PENDING.c.actor == "user:b"
        )
        found = await database.fetch_one(statement)
        assert found is not None
        actor, occurred_at = found
        assert actor == "user:b"
        assert occurred_at == moment
        assert occurred_at.tzinfo is not None
        assert await database.fetch_one(ANY_PENDING) is not None
    finally:
        await database.dispose()


async def test_a_failing_batch_leaves_nothing(fresh_database_url: str) -> None:
    database = Database(fresh_database_url)
    moment = dt.datetime.now(dt.UTC)
    broken = {**_row("user:c", moment), "actor": None}
    try:
        with pytest.raises(Exception, match=r"(?i)null"):
            await database.insert_many(PENDING, [_row("user:a", moment), broken])
        assert await database.fetch_one(ANY_PENDING) is None
        await database.insert_many(PENDING, [_row("user:a", moment)])
        assert await database.fetch_one(ANY_PENDING) is not None
    finally:
        await database.dispose()


async def test_naive_times_are_refused_before_they_reach_the_database(
    fresh_database_url: str,
) -> None:
    database = Database(fresh_database_url)
    try:
        with pytest.raises(ValueError, match="naive"):
            await database.insert_many(PENDING, [_row("user:a", dt.datetime(2026, 1, 1))])
    finally:
        await database.dispose()


@pytest.mark.parametrize(("generic", "mode"), [(True, "force_generic_plan"), (False, "auto")])
async def test_the_driver_plans_its_statements_once_unless_told_not_to(
    database_url: str, generic: bool, mode: str
) -> None:
    """PostgreSQL: the driver's connections use generic plans (`MEDICUS_DB_GENERIC_PLANS`)."""
    database = Database(database_url, generic_plans=generic)
    if database.dialect_name != "postgresql":
        await database.dispose()
        pytest.skip("plans are PostgreSQL's")
    try:
        async with database.reading() as reading:
            found = await reading.fetch_all(
                "plan_cache_mode", lambda: select(func.current_setting("plan_cache_mode")), {}
            )
        assert found[0][0] == mode
    finally:
        await database.dispose()


async def test_a_search_planned_per_execution_gets_custom_plans_then_gives_them_back(
    database_url: str,
) -> None:
    """PostgreSQL: a broad search's connection plans for its values and prices a random
    page read as on SSDs while it is lent, and goes back to the pool with generic plans and
    the server's price, also when the work failed."""
    database = Database(database_url, pool_size=1)
    if database.dialect_name != "postgresql":
        await database.dispose()
        pytest.skip("plans are PostgreSQL's")

    async def mode(reading: Reading) -> tuple[str, str]:
        key = "plan_cache_mode, random_page_cost"
        found = await reading.fetch_all(
            key,
            lambda: select(
                func.current_setting("plan_cache_mode"), func.current_setting("random_page_cost")
            ),
            {},
        )
        return str(found[0][0]), str(found[0][1])

    try:
        async with database.reading() as reading:
            usual = await mode(reading)
        assert usual[0] == "force_generic_plan"
        async with database.reading(planned_per_execution=True) as reading:
            assert await mode(reading) == ("force_custom_plan", "1.1")
        async with database.reading() as reading:
            assert await mode(reading) == usual
        with pytest.raises(RuntimeError):
            async with database.reading(planned_per_execution=True) as reading:
                raise RuntimeError("the search failed")
        async with database.reading() as reading:  # the pool's one connection
            assert await mode(reading) == usual
    finally:
        await database.dispose()
