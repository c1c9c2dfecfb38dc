"""ASGI app factory: mounts every capability's router on one FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

import medicus
from medicus import health
from medicus.access import routes as access_routes
from medicus.core.http import BodySizeLimit, RequestObserver, install_errors
from medicus.core.logging import AccessLog, configure_logging
from medicus.core.process import exit_with_parent
from medicus.fhir import routes as fhir_routes
from medicus.iam import admin_routes
from medicus.iam import routes as iam_routes
from medicus.iam.discovery import Endpoints
from medicus.iam.pages import STYLESHEET_PATH, Pages
from medicus.platform import Platform, build_platform
from medicus.settings import Settings, load_settings

_LANDING_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings, platform: Platform | None = None) -> FastAPI:
    """Build the app for `settings`; pass `platform` to share services with the caller."""
    platform = platform or build_platform(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await platform.start_background_work()
        try:
            yield
        finally:
            await platform.stop_background_work()
            await platform.close()

    app = FastAPI(
        title="medicus",
        version=medicus.__version__,
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_errors(app)
    app.include_router(health.build_router(platform.database, platform.metrics))
    app.include_router(_landing_router(platform.endpoints))
    # The FHIR hub's routes first: they take most requests, and routes are tried in order.
    app.include_router(
        fhir_routes.build_router(
            platform.fhir.router,
            platform.fhir.bundles,
            platform.tokens,
            platform.endpoints.fhir_base_url,
        )
    )
    pages = Pages(secure_cookies=platform.endpoints.secure_cookies)
    app.include_router(
        iam_routes.build_router(
            platform.endpoints,
            pages,
            platform.logins,
            platform.oauth,
            platform.tokens,
            platform.signing_keys,
            platform.upstream,
        )
    )
    app.include_router(admin_routes.build_router(platform.admin, platform.tokens, pages))
    app.include_router(
        access_routes.build_router(
            platform.patients,
            platform.break_glass,
            platform.trail_reader,
            platform.disclosures,
            platform.tokens,
            platform.endpoints.fhir_base_url,
        )
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObserver, metrics=platform.metrics, access_log=_access_log(settings))
    return app


def _access_log(settings: Settings) -> AccessLog:
    return AccessLog(
        mode=settings.access_log_mode(),
        sample_rate=settings.access_log_sample_rate,
        slow_ms=settings.access_log_slow_ms,
        enabled=settings.log_level in ("DEBUG", "INFO"),
        json_lines=settings.uses_json_logs,
    )


def _landing_router(endpoints: Endpoints) -> APIRouter:
    """`/`: where to go from here, until the portal exists: a page of links for browsers, the
    same links as JSON for everything else."""
    issuer, fhir = endpoints.issuer, endpoints.fhir_base_url
    links = {  # name in JSON: (what a person reads, where)
        "login": ("log in", f"{issuer}/login"),
        "docs": ("API documentation", f"{issuer}/docs"),
        "fhir": ("FHIR API", fhir),
        "capabilities": ("FHIR capability statement", f"{fhir}/metadata"),
        "smart_configuration": ("SMART configuration", f"{issuer}/.well-known/smart-configuration"),
        "readiness": ("readiness", f"{issuer}/readyz"),
    }
    items = "".join(f'<li><a href="{url}">{title}</a></li>' for title, url in links.values())
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>medicus</title><link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f"<body><main><h1>medicus {medicus.__version__}</h1>"
        "<p>Health-data platform for a region's hospitals. The portal is not built yet; "
        f"from here:</p><ul>{items}</ul></main></body></html>"
    )
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def landing(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(page, headers=_LANDING_HEADERS)
        body = {
            "name": "medicus",
            "version": medicus.__version__,
            "links": {name: url for name, (_, url) in links.items()},
        }
        return JSONResponse(body, headers=_LANDING_HEADERS)

    return router


def create_app_from_environment() -> FastAPI:
    """Factory for ASGI servers (`uvicorn --factory medicus.app:create_app_from_environment`)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.uses_json_logs)
    return create_app(settings)


def create_worker_app() -> FastAPI:
    """Factory of `medicus serve --workers N`'s worker processes, which exit with their
    supervisor."""
    exit_with_parent()
    return create_app_from_environment()
