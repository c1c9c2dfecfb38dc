"""What a data migration that changes the sharing rules does afterwards: recompute every
person's shares, the vouching of consents and the register of whom each record is open to,
with the rule's own code (`access.sharing`), so that derived data agrees with later writes.
Persons are read a batch at a time."""

from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.repository import StoredConsent, StoredRecord, TreatmentFact, stored_consent
from medicus.access.sharing import CARE_PROVIDERS, Facts, disclosures, newly_vouched, shares
from medicus.core.db import UTCDateTime, utc_now

_BATCH = 1000
_RECORDS = sa.table(
    "mpi_record", *map(sa.column, ("patient_id", "organisation_id", "person_id", "kvnr"))
)
_CONSENTS = sa.table(
    "access_consent",
    *map(sa.column, ("consent_id", "organisation_id", "patient_id", "decision")),
    *map(sa.column, ("organisations", "excluded")),
    sa.column("valid_from", UTCDateTime()),
    sa.column("valid_until", UTCDateTime()),
    sa.column("vouched_at", UTCDateTime()),
)
_TREATMENTS = sa.table(
    "access_treatment",
    *map(sa.column, ("organisation_id", "treating_organisation_id", "patient_id")),
    *map(sa.column, ("resource_type", "resource_id")),
)
_SHARES = sa.table(
    "access_share",
    *map(sa.column, ("organisation_id", "person_id")),
    sa.column("valid_from", UTCDateTime()),
    sa.column("valid_until", UTCDateTime()),
)
_DISCLOSURES = sa.table(
    "access_disclosure",
    *map(sa.column, ("holder_organisation_id", "patient_id", "organisation_id", "reasons")),
    sa.column("gained_at", UTCDateTime()),
    sa.column("ended_at", UTCDateTime()),
)
_ORGANISATIONS = sa.table("organisation", *map(sa.column, ("id", "type")))


def recompute_all_shares() -> None:
    """Replace every person's shares and disclosures by what their facts say now."""
    connection = op.get_bind()
    care = frozenset(
        connection.execute(
            sa.select(_ORGANISATIONS.c.id).where(_ORGANISATIONS.c.type.in_(sorted(CARE_PROVIDERS)))
        ).scalars()
    )
    connection.execute(sa.delete(_SHARES))
    connection.execute(sa.delete(_DISCLOSURES))
    now = utc_now()
    for members in _persons():
        ids = sorted(member.patient_id for member in members)
        facts = Facts(members, _consents(ids), _treatments(ids), care)
        vouched = newly_vouched(facts)
        if vouched:
            connection.execute(
                sa.update(_CONSENTS)
                .where(_CONSENTS.c.consent_id.in_(vouched))
                .values(vouched_at=now)
            )
            facts = facts._replace(consents=_consents(ids))
        _write(facts, now)


def _write(facts: Facts, now: Any) -> None:
    by_person: dict[str, list[StoredRecord]] = {}
    for record in facts.records:
        by_person.setdefault(record.person_id, []).append(record)
    holder = {record.patient_id: record.organisation_id for record in facts.records}
    share_rows: list[dict[str, Any]] = []
    disclosure_rows: list[dict[str, Any]] = []
    for person_id, members in by_person.items():
        person = facts._replace(records=members)
        share_rows.extend(
            {
                "organisation_id": share.organisation_id,
                "person_id": person_id,
                "valid_from": share.valid_from,
                "valid_until": share.valid_until,
            }
            for share in shares(person, now)
        )
        disclosure_rows.extend(
            {
                "holder_organisation_id": holder[patient_id],
                "patient_id": patient_id,
                "organisation_id": organisation,
                "reasons": orjson.dumps(reasons).decode(),
                "gained_at": now,
                "ended_at": None,
            }
            for (patient_id, organisation), reasons in disclosures(person, now).items()
        )
    if share_rows:
        op.bulk_insert(_SHARES, share_rows)
    if disclosure_rows:
        op.bulk_insert(_DISCLOSURES, disclosure_rows)


def _persons() -> Iterator[list[StoredRecord]]:
    """The records of every person that has facts, a batch of persons at a time."""
    connection = op.get_bind()
    records = _RECORDS.c
    after = ""
    while True:
        persons = list(
            connection.execute(
                sa.select(records.person_id)
                .where(records.person_id > after)
                .group_by(records.person_id)
                .order_by(records.person_id)
                .limit(_BATCH)
            ).scalars()
        )
        if not persons:
            return
        after = persons[-1]
        yield [
            StoredRecord(*row)
            for row in connection.execute(
                sa.select(*_RECORDS.c).where(records.person_id.in_(persons))
            )
        ]


def _consents(ids: list[str]) -> list[StoredConsent]:
    rows = op.get_bind().execute(sa.select(*_CONSENTS.c).where(_CONSENTS.c.patient_id.in_(ids)))
    return [stored_consent(row) for row in rows]


def _treatments(ids: list[str]) -> list[TreatmentFact]:
    rows = op.get_bind().execute(sa.select(*_TREATMENTS.c).where(_TREATMENTS.c.patient_id.in_(ids)))
    return [
        TreatmentFact(
            row.organisation_id,
            row.treating_organisation_id,
            row.patient_id,
            f"{row.resource_type}/{row.resource_id}",
        )
        for row in rows
    ]
