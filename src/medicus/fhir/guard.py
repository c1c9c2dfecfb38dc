"""The FHIR hub's one way to ask `access`: every decision becomes an audit event, and a
refusal becomes the error the caller sees (404 for another organisation's record, so that
its existence is not revealed; 403 for a scope that does not allow the interaction, and for
a change to data the caller may read but another organisation holds)."""

from __future__ import annotations

from medicus.access.policy import (
    AccessDenied,
    AccessPolicy,
    Decision,
    Interaction,
    Viewpoint,
    audited,
)
from medicus.audit.service import AuditRecord, Outcome
from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal

__all__ = ["AccessDenied", "Guard", "audit_event"]


def audit_event(
    caller: Principal,
    interaction: Interaction | str,
    target: str,
    decision: Decision,
    detail: dict[str, str] | None = None,
) -> AuditRecord:
    outcome = Outcome.SUCCESS if decision.allowed else Outcome.DENIED
    details = {"reason": decision.reason, **(detail or {})}
    return audited(caller, f"fhir.{interaction}", target, details, outcome)


class Guard:
    def __init__(self, access: AccessPolicy, clock: Clock = utc_now) -> None:
        self._access = access
        self._clock = clock

    def check(
        self,
        caller: Principal,
        interaction: Interaction,
        resource_type: str,
        fhir_id: str | None,
        owner_organisation: str | None,
        shared: bool = False,
        opened: bool = False,
        patient_id: str | None = None,
    ) -> AuditRecord:
        """The audit event of an allowed decision; raises `AccessDenied` otherwise. The
        event concerns `patient_id`, the Patient record whose data the resource is."""
        decision = self._access.decide(
            caller, interaction, resource_type, owner_organisation, shared, opened
        )
        target = f"{resource_type}/{fhir_id}" if fhir_id else resource_type
        event = audit_event(caller, interaction, target, decision).about(patient_id)
        if decision.allowed:
            return event
        if decision.reason == "other-organisation":
            error = ApiError(404, f"{target} is not known here.")
        elif decision.reason == "held-elsewhere":
            error = ApiError(
                403,
                f"{target} is held by another organisation: it may be read here, "
                "but only its holder changes it.",
            )
        else:
            error = ApiError(
                403, f"Your access token does not allow {interaction} on {resource_type}."
            )
        raise AccessDenied(event, error)

    def viewpoint(self, caller: Principal, sharing: bool = True) -> Viewpoint:
        """What the caller's queries see now (see `Viewpoint`)."""
        return self._access.viewpoint(caller, self._clock(), sharing)

    def readable_types(self, caller: Principal, all_types: frozenset[str]) -> frozenset[str]:
        return self._access.readable_types(caller, all_types)
