"""Access decisions for patient data. Every data path asks here and nowhere else.

The rules in force:
- staff (and service accounts) of an organisation may act on the data their own organisation
  holds, as far as their token's SMART scopes allow;
- they may read (read, vread, history, search, `$everything`) a person's data that other
  organisations hold while that data is shared with their organisation: the person's sharing
  consent, vouched for by a treating care provider, covers it and it has a treatment
  relation with the person (`sharing`; only care providers record either);
- a physician of a care provider may read a person's data without these by break-glass,
  stating a reason, for a limited time (`breakglass`);
- data held elsewhere is never written or deleted.

Searches are filtered inside their query: `readable_record` (or, where a query starts from
them, `readable_patients`) is the condition every query of patient data carries besides its
own organisation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import CompoundSelect, Select, or_, union

from medicus.access import repository
from medicus.audit.events import CLIENT_DETAIL
from medicus.audit.service import AuditRecord, Outcome
from medicus.core.errors import ApiError
from medicus.iam.scopes import Context, ScopeSet
from medicus.iam.tokens import Principal


class Purpose(StrEnum):
    """Why data is used: the treatment rules and the research rules never mix."""

    TREATMENT = "treatment"
    RESEARCH = "research"


class Interaction(StrEnum):
    READ = "read"
    VREAD = "vread"
    HISTORY = "history"
    SEARCH = "search"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EVERYTHING = "everything"


_PERMISSION = {
    Interaction.READ: "r",
    Interaction.VREAD: "r",
    Interaction.HISTORY: "r",
    Interaction.SEARCH: "s",
    Interaction.CREATE: "c",
    Interaction.UPDATE: "u",
    Interaction.DELETE: "d",
    Interaction.EVERYTHING: "r",
}


_READING = frozenset(
    {
        Interaction.READ,
        Interaction.VREAD,
        Interaction.HISTORY,
        Interaction.SEARCH,
        Interaction.EVERYTHING,
    }
)


class AccessDenied(Exception):
    """A refusal: its audit event must be recorded even though the work is rolled back."""

    def __init__(self, event: AuditRecord, error: ApiError) -> None:
        super().__init__(error.detail)
        self.event = event
        self.error = error


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def audited(
    caller: Principal,
    action: str,
    target: str,
    detail: dict[str, str] | None = None,
    outcome: Outcome = Outcome.SUCCESS,
) -> AuditRecord:
    """The audit event of `caller` doing `action` to `target` (allowed, unless `outcome`
    says otherwise), naming the app (OAuth client) the caller used (`client`)."""
    return AuditRecord(
        action,
        caller.actor,
        outcome=outcome,
        organisation=caller.organisation_id,
        target=target,
        detail={**(detail or {}), CLIENT_DETAIL: caller.client_id},
    )


@dataclass(frozen=True)
class Viewpoint:
    """Through whose eyes a query of patient data sees: the caller's organisation, at one
    moment (shares begin and end in time); without `sharing`, only what the organisation
    holds itself (the matches of a conditional write)."""

    organisation_id: str
    actor: str
    at: dt.datetime
    sharing: bool = True


def same_person(patient: Any) -> Select[tuple[str]]:
    """The Patient records of the person that record `patient` (an SQL expression) belongs
    to, by the master patient index (`patients`)."""
    return repository.same_person(patient)


def shared_record(patient: Any, organisation: Any, at: Any) -> Any:
    """Whether the data of Patient record `patient` (a column of the row being decided) is
    shared with `organisation` at `at` (bound parameters of the caller's query)."""
    return repository.shared_record(patient, organisation, at)


def opened_record(patient: Any, actor: Any, at: Any) -> Any:
    """Whether `actor` may read the data of Patient record `patient` at `at` by break-glass."""
    return repository.opened_record(patient, actor, at)


def research_permitted(patient: Any, purpose: Any, at: Any) -> Any:
    """Whether the data of Patient record `patient` may be used for research `purpose` (an
    MII consent purpose, `research.MEDICAL_DATA_FOR_RESEARCH`) at `at` (SQL expressions):
    the condition every research query of patient data carries (`research`)."""
    return repository.research_permitted(patient, purpose, at)


def readable_record(patient: Any, organisation: Any, actor: Any, at: Any) -> Any:
    """Whether the viewer may read the data of Patient record `patient` although others
    hold it: shared with its organisation, or opened by its break-glass. The condition of
    every query of patient data that starts from a few candidates."""
    return or_(shared_record(patient, organisation, at), opened_record(patient, actor, at))


def readable_patients(organisation: Any, actor: Any, at: Any) -> CompoundSelect[tuple[str]]:
    """The Patient records whose data held elsewhere the viewer may read: shared with its
    organisation, or opened by break-glass. For queries that start from them (a listing of
    a type), where a condition per row could use no index."""
    return union(
        repository.shared_patients(organisation, at), repository.opened_patients(actor, at)
    )


def _enforceable(principal: Principal) -> ScopeSet:
    """The token's scopes without those narrowed by a query (`?category=laboratory`): such
    constraints are not applied as filters yet, so they grant nothing rather than everything."""
    unconstrained = frozenset(scope for scope in principal.scope.resources if not scope.query)
    return ScopeSet(unconstrained, principal.scope.other)


class AccessPolicy:
    def decide(
        self,
        principal: Principal,
        interaction: Interaction,
        resource_type: str,
        owner_organisation: str | None,
        shared: bool = False,
        opened: bool = False,
        purpose: Purpose = Purpose.TREATMENT,
        research_consented: bool = False,
    ) -> Decision:
        """May `principal` perform `interaction` on a `resource_type` held by
        `owner_organisation` (None: a resource that does not exist yet), whose patient's data
        is `shared` with the principal's organisation or `opened` by the principal's
        break-glass, or neither? For research, only whether the patient's research consent
        permits it (`research_consented`) counts, and only for reading: not who holds the
        data, not sharing, not break-glass."""
        context = Context.SYSTEM if principal.kind == "service" else Context.USER
        if not _enforceable(principal).allows(context, resource_type, _PERMISSION[interaction]):
            return Decision(False, "scope")
        if purpose is Purpose.RESEARCH:
            if interaction in _READING and research_consented:
                return Decision(True, "research-consent")
            return Decision(False, "no-research-consent")
        if owner_organisation is None or owner_organisation == principal.organisation_id:
            return Decision(True, "own-organisation")
        if shared and interaction in _READING:
            return Decision(True, "consent-and-treatment")
        if opened and interaction in _READING:
            return Decision(True, "break-glass")
        if shared or opened:
            return Decision(False, "held-elsewhere")
        return Decision(False, "other-organisation")

    def viewpoint(self, principal: Principal, at: dt.datetime, sharing: bool = True) -> Viewpoint:
        """The viewpoint of `principal`'s queries of patient data at `at`."""
        return Viewpoint(principal.organisation_id, principal.actor, at, sharing)

    def readable_types(self, principal: Principal, all_types: frozenset[str]) -> frozenset[str]:
        """The resource types whose history or search the principal's scopes allow."""
        context = Context.SYSTEM if principal.kind == "service" else Context.USER
        allowed = _enforceable(principal).resource_types_for(context, "r")
        return all_types if "*" in allowed else all_types & allowed
