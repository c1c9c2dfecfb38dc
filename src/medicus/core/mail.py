"""Sending e-mail, behind one small interface chosen once by configuration: SMTP in production,
the log in development (the issue of a development set-up is a working link, not a mail)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

from medicus.core.errors import ApiError
from medicus.core.logging import get_logger

log = get_logger("medicus.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None: ...


class LogMailSender:
    """Development only: writes the whole mail to the log, so that a developer can click the
    link. Never used in production mode (the log must not carry personal data there)."""

    async def send(self, mail: Mail) -> None:
        log.info("mail (development: not sent)", to=mail.to, subject=mail.subject, body=mail.body)


class UnavailableMailSender:
    """Production without SMTP: sending fails with a clear answer instead of logging mail."""

    async def send(self, mail: Mail) -> None:
        raise ApiError(503, "E-mail is not configured on this platform (MEDICUS_SMTP_URL).")


class SmtpMailSender:
    """SMTP with STARTTLS (`smtp://user:password@host:587`) or implicit TLS (`smtps://...:465`).
    Only a relay on this machine (`smtp://localhost:25`) may be spoken to without TLS."""

    def __init__(self, url: str, sender: str) -> None:
        parts = urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 587)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self._sender, mail.to, mail.subject
        message.set_content(mail.body)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as error:
            # Said here, where it is known to be the mail relay: a bare connection error would
            # otherwise be taken for the database's (a 503 that names the wrong system).
            log.warning("mail relay unavailable", error_type=type(error).__name__)
            raise ApiError(
                503, "The e-mail could not be sent: the mail relay is not reachable or refused it."
            ) from None

    def _deliver(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self._implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self._host, self._port, context=context)
        else:
            client = smtplib.SMTP(self._host, self._port)
        with client:
            client.ehlo()
            if not self._implicit_tls and not self._local_relay_without_tls(client):
                client.starttls(context=context)
            if self._user and self._password:
                client.login(self._user, self._password)
            client.send_message(message)

    def _local_relay_without_tls(self, client: smtplib.SMTP) -> bool:
        if client.has_extn("starttls"):
            return False
        if self._host in ("localhost", "127.0.0.1", "::1"):
            return True
        raise ConnectionError(f"the SMTP server {self._host} offers no STARTTLS")
