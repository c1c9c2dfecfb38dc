"""The composition root: builds every service of one medicus process from its Settings, once.
Nothing else creates engines, clients or services; routes receive what they need from here."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.audit.sealer import AuditSealer
from medicus.audit.service import AuditTrail
from medicus.core.db import Database
from medicus.core.metrics import HttpMetrics
from medicus.iam.service import IdentityService
from medicus.settings import Settings


@dataclass
class Platform:
    settings: Settings
    database: Database
    metrics: HttpMetrics
    audit: AuditTrail
    audit_sealer: AuditSealer
    identity: IdentityService

    async def start_background_work(self) -> None:
        self.audit_sealer.start()

    async def stop_background_work(self) -> None:
        await self.audit_sealer.stop()

    async def close(self) -> None:
        await self.database.dispose()


def build_platform(settings: Settings) -> Platform:
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    audit = AuditTrail(database)
    return Platform(
        settings=settings,
        database=database,
        metrics=HttpMetrics(),
        audit=audit,
        audit_sealer=AuditSealer(audit, settings.audit_seal_interval),
        identity=IdentityService(audit),
    )
