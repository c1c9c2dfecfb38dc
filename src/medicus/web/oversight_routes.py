"""HTTP of the data-protection officer's pages: the break-glass review queue and the audit
trail browser with the chain's verification. Bad filter values get a message next to their
field (422) and search nothing."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.audit.service import Outcome
from medicus.web.doorway import Doorway
from medicus.web.oversight import OversightPages, TrailFilter
from medicus.web.pages import PortalPages
from medicus.web.users import PortalUser

NOTE_MAX = 2000
FIELD_MAX = 200


def build_oversight_router(
    doorway: Doorway, oversight: OversightPages, pages: PortalPages
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter

    @router.get("/portal/oversight/break-glass", response_class=HTMLResponse)
    async def queue(request: Request, shown: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            everything = shown == "all"
            openings = await oversight.openings(user, unreviewed=not everything)
            return pages.render(
                request,
                "break_glass_queue.html",
                user=user,
                openings=openings,
                everything=everything,
            )

        return await as_user(request, show)

    @router.post("/portal/oversight/break-glass/{opening_id}/review", response_class=HTMLResponse)
    async def review(request: Request, opening_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            note = fields.get("note", "").strip()
            if not 1 <= len(note) <= NOTE_MAX:
                openings = await oversight.openings(user, unreviewed=True)
                return pages.render(
                    request,
                    "break_glass_queue.html",
                    422,
                    user=user,
                    openings=openings,
                    everything=False,
                    refused=opening_id,
                )
            await oversight.review(user, opening_id[:FIELD_MAX], note)
            return RedirectResponse("/portal/oversight/break-glass", status_code=303)

        return await doorway.submit(request, submit)

    @router.get("/portal/oversight/audit", response_class=HTMLResponse)
    async def trail(request: Request) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            wanted, errors = _filter(dict(request.query_params))
            lines, following = ([], None) if errors else await oversight.trail(user, wanted)
            return pages.render(
                request,
                "audit_trail.html",
                422 if errors else 200,
                user=user,
                wanted=wanted,
                errors=errors,
                lines=lines,
                following=following,
                query=request.query_params,
            )

        return await as_user(request, show)

    @router.post("/portal/oversight/audit/verify", response_class=HTMLResponse)
    async def verify(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            report = await oversight.verify(user)
            return pages.render(request, "chain_report.html", user=user, report=report)

        return await doorway.submit(request, submit)

    return router


def _filter(given: dict[str, str]) -> tuple[TrailFilter, set[str]]:
    """The audit browser's filter from its form, and the names of the fields that are not
    what they should be."""
    errors: set[str] = set()
    text = {
        name: given.get(name, "").strip()[:FIELD_MAX] for name in ("patient", "user", "outcome")
    }
    if text["outcome"] and text["outcome"] not in {o.value for o in Outcome}:
        errors.add("outcome")
    days: dict[str, dt.date | None] = {}
    for name in ("since", "until"):
        try:
            days[name] = dt.date.fromisoformat(given[name]) if given.get(name) else None
        except ValueError:
            errors.add(name)
            days[name] = None
    below = given.get("below", "")
    if below and not below.isdigit():
        errors.add("below")
    wanted = TrailFilter(
        patient=text["patient"],
        user_email=text["user"],
        outcome="" if "outcome" in errors else text["outcome"],
        since=days["since"],
        until=days["until"],
        below=int(below) if below.isdigit() and len(below) < 19 else None,
    )
    return wanted, errors
