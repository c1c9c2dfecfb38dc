"""Sending mail through a relay that is not there is a 503 that names the mail relay: a bare
connection error reached the error handler, which takes those for the database's."""

from __future__ import annotations

import pytest

from medicus.core.errors import ApiError
from medicus.core.mail import Mail, SmtpMailSender


async def test_an_unreachable_relay_is_a_503_about_mail() -> None:
    sender = SmtpMailSender("smtp://127.0.0.1:9", "medicus@hospital.example")  # refused
    with pytest.raises(ApiError) as raised:
        await sender.send(Mail("someone@hospital.example", "Invitation", "Welcome"))
    assert raised.value.status == 503
    assert "mail relay" in raised.value.detail
