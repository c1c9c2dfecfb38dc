"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from medicus import migrations
from medicus.core.db import Database
from medicus.core.metrics import HttpMetrics


def build_router(database: Database, metrics: HttpMetrics) -> APIRouter:
    router = APIRouter(tags=["operations"])
    expected_revision = migrations.head_revision()

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz", summary="The database is reachable and its migrations are current")
    async def readyz() -> Response:
        checks: dict[str, Any] = {}
        try:
            await database.ping()
            checks["database"] = "reachable"
            revision = await migrations.current_revision(database)
        except (SQLAlchemyError, OSError) as error:
            checks["database"] = f"unreachable ({type(error).__name__})"
            revision = None
        if revision == expected_revision:
            checks["migrations"] = f"current ({revision})"
        else:
            checks["migrations"] = (
                f"pending: database at {revision or 'no revision'}, code expects "
                f"{expected_revision}; run `medicus migrate`"
            )
        ready = checks["database"] == "reachable" and revision == expected_revision
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics of this process")
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    return router
