"""The organisation administrator's page through HTTP: members listed, an invitation sent
(bad values refused next to their field), a role changed, a member suspended (whose portal
session ends with the next request) and restored; nobody else may use it."""

from __future__ import annotations

import re

from tests.web.conftest import ADMIN, NURSE, Ward

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _member_action(page: str, email: str) -> str:
    """The form action of the member with `email` on the members page."""
    row = page.split(email, 1)[1]
    found = re.search(r'action="(/portal/admin/members/[^"]+)"', row)
    assert found is not None
    return found.group(1)


async def test_an_admin_invites_and_manages_members(ward: Ward) -> None:
    await ward.physician.login("/portal")
    async with ward.browser_of(ADMIN) as admin:
        start = await admin.login("/portal")
        assert "Mitglieder" in start.text
        page = await admin.http.get("/portal/admin/members")
        assert page.status_code == 200
        assert ward.physician.email in page.text
        csrf = _CSRF.search(page.text)
        assert csrf is not None
        token = csrf.group(1)
        bad = await admin.http.post(
            "/portal/admin/invitations",
            data={
                "csrf": token,
                "email": "not an address",
                "display_name": "",
                "role": "physician",
            },
        )
        assert bad.status_code == 422
        assert 'id="i-email-error"' in bad.text
        assert 'id="i-display_name-error"' in bad.text
        sent = await admin.http.post(
            "/portal/admin/invitations",
            data={
                "csrf": token,
                "email": "new.doc@hospital-b.example",
                "display_name": "Dr. Neu",
                "role": "physician",
            },
        )
        assert sent.status_code == 303
        assert "new.doc@hospital-b.example" in (await admin.http.get(sent.headers["location"])).text
        nurse = _member_action(page.text, NURSE)
        changed = await admin.http.post(
            nurse, data={"csrf": token, "action": "role", "role": "medical_assistant"}
        )
        assert changed.status_code == 303
        physician = _member_action(page.text, ward.physician.email)
        suspended = await admin.http.post(physician, data={"csrf": token, "action": "suspend"})
        assert suspended.status_code == 303
        after = await ward.http.get("/portal/patients")
        assert after.status_code == 303, "the suspended physician's session has ended"
        restored = await admin.http.post(physician, data={"csrf": token, "action": "restore"})
        assert restored.status_code == 303
        refused = await admin.http.post(physician, data={"csrf": token, "action": "explode"})
        assert refused.status_code == 400
        listed = await admin.http.get("/portal/admin/members")
        assert "Medizinische Fachangestellte" in listed.text


async def test_a_physician_may_not_administer(ward: Ward) -> None:
    await ward.physician.login("/portal")
    page = await ward.http.get("/portal/admin/members")
    assert page.status_code == 403
    assert "Mitglieder" not in page.text.split("<main", 1)[0], "not in the navigation"
