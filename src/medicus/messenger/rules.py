"""Who may invite whom (the TI-Messenger's invite rules as medicus applies them): free within an
organisation; across organisations only to people their organisation lists in the directory
(or who allowed the inviter themselves), and only between organisations on the platform's
federation list; never to someone who blocked the inviter. Pure: the facts come from
`messenger.service`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """What the rules need of one medicus user."""

    user_id: str
    matrix_id: str
    organisations: frozenset[str]
    """Where they work now (active staff memberships)."""
    listed_in: frozenset[str]
    """The organisations that list them in the directory."""


@dataclass(frozen=True)
class InviteFacts:
    inviter: Person
    invitee: Person | None
    """None: not a user of this platform (or of another homeserver)."""
    federation: frozenset[str]
    invitee_rule_for_inviter: str | None
    """The invitee's own rule about the inviter: "block", "allow" or none."""


def invite_refusal(facts: InviteFacts) -> str | None:
    """Why this invitation is refused (a sentence for the inviter), or None if it may go."""
    inviter, invitee = facts.inviter, facts.invitee
    if not inviter.organisations:
        return "You do not work for an organisation of this platform now."
    if invitee is None or not invitee.organisations:
        return "This address is not reachable through this messenger."
    if facts.invitee_rule_for_inviter == "block":
        return "This person does not accept invitations from you."
    if inviter.organisations & invitee.organisations:
        return None
    if not inviter.organisations & facts.federation:
        return "Your organisation is not on the platform's federation list."
    reachable = invitee.organisations & facts.federation
    if not reachable:
        return "This person's organisation is not on the platform's federation list."
    if facts.invitee_rule_for_inviter == "allow" or invitee.listed_in & reachable:
        return None
    return "This person is not listed in the directory for other organisations."
