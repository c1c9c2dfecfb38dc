"""Access decisions for patient data. Every data path asks here and nowhere else.

The rule in force now is the first of the data-protection concept: staff (and service
accounts) of an organisation may act on the data their own organisation holds, as far as their
token's SMART scopes allow. Consent, treatment relations, break-glass and the master patient
index build on this same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from medicus.iam.scopes import Context, ScopeSet
from medicus.iam.tokens import Principal


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


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


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
    ) -> Decision:
        """May `principal` perform `interaction` on a `resource_type` held by
        `owner_organisation` (None: a resource that does not exist yet)?"""
        context = Context.SYSTEM if principal.kind == "service" else Context.USER
        if not _enforceable(principal).allows(context, resource_type, _PERMISSION[interaction]):
            return Decision(False, "scope")
        if owner_organisation is not None and owner_organisation != principal.organisation_id:
            return Decision(False, "other-organisation")
        return Decision(True, "own-organisation")

    def readable_types(self, principal: Principal, all_types: frozenset[str]) -> frozenset[str]:
        """The resource types whose history or search the principal's scopes allow."""
        context = Context.SYSTEM if principal.kind == "service" else Context.USER
        allowed = _enforceable(principal).resource_types_for(context, "r")
        return all_types if "*" in allowed else all_types & allowed
