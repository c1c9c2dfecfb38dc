"""`medicus demo` data: two hospitals, a practice, their staff and a backend client, idempotent
and audited. The client's key is readable by its owner only, found again on the next run, and
accepted by the token endpoint for a real, scoped, audited token."""

from __future__ import annotations

import stat

import httpx
import orjson
from sqlalchemy import text

from medicus.app import create_app
from medicus.demo import DEMO_CLIENT_SCOPE, DEMO_ORGANISATIONS, describe, load_demo
from medicus.iam import client_keys, token_repository
from medicus.platform import Platform
from tests.support.database import count, rows


async def test_demo_creates_organisations_and_staff_once(fresh_platform: Platform) -> None:
    first = await load_demo(fresh_platform)
    emails = {email for org in DEMO_ORGANISATIONS for email, _, _ in (*org.staff, *org.patients)}
    memberships = sum(len(org.staff) + len(org.patients) for org in DEMO_ORGANISATIONS)
    assert (first.organisations_created, first.users_created) == (
        len(DEMO_ORGANISATIONS),
        len(emails),
    )
    assert first.memberships_created == memberships

    second = await load_demo(fresh_platform)
    assert (second.organisations_created, second.users_created) == (0, 0)
    assert second.memberships_created == 0
    assert await count(fresh_platform, "organisation") == len(DEMO_ORGANISATIONS)
    assert await count(fresh_platform, "app_user") == len(emails)


async def test_demo_is_audited(fresh_platform: Platform) -> None:
    summary = await load_demo(fresh_platform)
    await fresh_platform.audit.seal_all()
    report = await fresh_platform.audit.verify()
    assert report.intact
    # Each organisation, membership and client once; each user twice (created, password set).
    created = (
        summary.organisations_created
        + 2 * summary.users_created
        + summary.memberships_created
        + summary.client.created
    )
    actors = [actor for (actor,) in await rows(fresh_platform, "SELECT actor FROM audit_entry")]
    assert actors.count("system:demo") == created
    records = [actor for actor in actors if actor.startswith("service:demo-")]
    assert summary.patients_created
    assert len(records) > 0, "the demo patients are written through the FHIR hub, audited"
    assert len(records) + created == report.entries


async def test_demo_patients_are_written_once(fresh_platform: Platform) -> None:
    assert (await load_demo(fresh_platform)).patients_created
    resources = await count(fresh_platform, "fhir_resource")
    assert not (await load_demo(fresh_platform)).patients_created
    assert await count(fresh_platform, "fhir_resource") == resources


async def test_a_consultant_works_for_two_hospitals(fresh_platform: Platform) -> None:
    await load_demo(fresh_platform)
    async with fresh_platform.database.snapshot() as session:
        rows = await session.execute(
            text(
                "SELECT COUNT(*) FROM membership JOIN app_user ON app_user.id = membership.user_id"
                " WHERE app_user.email = 'dr.yilmaz@uk-nordstadt.example'"
            )
        )
    assert rows.scalar_one() == 2


async def test_the_demo_client_key_is_private_and_found_again(fresh_platform: Platform) -> None:
    first = await load_demo(fresh_platform)
    assert first.client.created
    data_dir = fresh_platform.settings.data_dir
    path = client_keys.key_path(data_dir, first.client.id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    private = orjson.loads(path.read_bytes())
    assert "d" in private

    async with fresh_platform.database.snapshot() as session:
        registered = await token_repository.client(session, first.client.id)
    assert registered is not None
    assert registered.scope == DEMO_CLIENT_SCOPE
    assert registered.jwks is not None
    assert private["d"] not in registered.jwks

    again = await load_demo(fresh_platform)
    assert again.client.id == first.client.id
    assert not again.client.created
    lines = describe(again, fresh_platform, ".venv/bin/medicus")
    assert private["d"] not in "\n".join(lines)
    assert lines[-1] == (
        f'  curl -H "Authorization: Bearer $(.venv/bin/medicus admin token --client '
        f'{first.client.id})" {fresh_platform.endpoints.fhir_base_url}/Patient'
    )


async def test_a_demo_client_without_its_key_is_replaced(fresh_platform: Platform) -> None:
    """A fresh data directory next to a database that was kept: the old client's key is gone,
    so the demo registers a new client rather than print a command that cannot work."""
    first = await load_demo(fresh_platform)
    client_keys.key_path(fresh_platform.settings.data_dir, first.client.id).unlink()
    second = await load_demo(fresh_platform)
    assert second.client.created
    assert second.client.id != first.client.id


async def test_the_demo_clients_assertion_gets_a_scoped_token(fresh_platform: Platform) -> None:
    summary = await load_demo(fresh_platform)
    key = client_keys.load_key(
        client_keys.key_path(fresh_platform.settings.data_dir, summary.client.id)
    )
    token_endpoint = fresh_platform.endpoints.token
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_assertion_type": client_keys.CLIENT_ASSERTION_TYPE,
        "client_assertion": client_keys.client_assertion(key, summary.client.id, token_endpoint),
    }
    app = create_app(fresh_platform.settings, fresh_platform)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.post("/oauth/token", data=form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["scope"] == "system/Patient.rs"
        replayed = await http.post("/oauth/token", data=form)
        assert replayed.status_code == 401
    await fresh_platform.audit.seal_all()
    async with fresh_platform.database.snapshot() as session:
        issued = await session.execute(
            text("SELECT actor, detail FROM audit_entry WHERE action = 'iam.token.issue'")
        )
        rows = issued.all()
    assert len(rows) == 1
    assert rows[0].actor == f"service:{summary.client.id}"
    assert "system/Patient.rs" in str(rows[0].detail)
