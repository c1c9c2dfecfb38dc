"""ASGI app factory: mounts every capability's router on one FastAPI app."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

import medicus
from medicus import health
from medicus.access import routes as access_routes
from medicus.collab import app_password_routes, share_link_routes
from medicus.collab import routes as collab_routes
from medicus.collab.share_link_pages import SharePages
from medicus.collab.webdav import DavMount
from medicus.collab.webdav_resources import DavServices
from medicus.core.http import BodySizeLimit, RequestObserver, install_errors
from medicus.core.i18n import Languages
from medicus.core.logging import AccessLog, configure_logging
from medicus.core.process import exit_with_parent, release_large_buffers
from medicus.fhir import routes as fhir_routes
from medicus.iam import admin_routes
from medicus.iam import routes as iam_routes
from medicus.iam.bearer import bearer_principal
from medicus.iam.discovery import Endpoints
from medicus.iam.pages import Pages
from medicus.messenger import directory_routes
from medicus.messenger import routes as messenger_routes
from medicus.messenger.proxy import MatrixProxy
from medicus.platform import Platform, build_platform
from medicus.settings import Settings, load_settings
from medicus.storage import routes as storage_routes
from medicus.storage.tus_routes import tus_router
from medicus.web import routes as web_routes
from medicus.web.assets import Assets
from medicus.web.pages import PortalPages

STREAMING_PREFIXES = (
    "/storage/",
    "/portal/uploads",
    "/portal/space-uploads",
    "/collab/content/",
    "/dav/",
    "/_matrix/",
)
"""Where bodies of any size stream to storage (objects, resumable uploads, WebDAV's PUT): their
routes set their own limits (the largest object, the organisation's quota) instead of
max_body_bytes."""

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
        # What exists now lives as long as the process (definitions, compiled templates,
        # SQL): kept out of the garbage collector's full passes, which otherwise walk it all
        # while a request waits (the chart's p95 at one client: 150 ms → 65 ms).
        gc.freeze()
        release_large_buffers()
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
    # The Messenger-Proxy's mounts first: a Matrix client's every request goes there, and two
    # prefix checks cost the other routes nothing worth measuring.
    _mount_matrix_proxy(app, platform)
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
    languages = Languages()
    pages = Pages(platform.endpoints.secure_cookies, languages)
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
    _include_storage(app, platform)
    _include_messenger(app, platform)
    app.include_router(_portal_router(platform, languages))
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, streaming_prefixes=STREAMING_PREFIXES
    )
    app.add_middleware(RequestObserver, metrics=platform.metrics, access_log=_access_log(settings))
    return app


def _portal_router(platform: Platform, languages: Languages) -> APIRouter:
    """The portal's pages (and its static files, and the tus endpoints of its uploads)."""
    portal_pages = PortalPages(Assets(), languages, platform.endpoints.secure_cookies)
    return web_routes.build_router(
        platform.portal,
        platform.portal_own_data,
        platform.portal_oversight,
        platform.admin,
        platform.logins,
        portal_pages,
        platform.organisation_settings,
        platform.portal_stewardship,
        platform.portal_storage,
        platform.portal_collab,
        web_routes.PortalMessenger.of(platform.database, platform.messenger),
        public_url=platform.settings.public_url,
    )


def _access_log(settings: Settings) -> AccessLog:
    return AccessLog(
        mode=settings.access_log_mode(),
        sample_rate=settings.access_log_sample_rate,
        slow_ms=settings.access_log_slow_ms,
        enabled=settings.log_level in ("DEBUG", "INFO"),
        json_lines=settings.uses_json_logs,
    )


def _storage_router(platform: Platform) -> APIRouter:
    """Objects, resumable uploads of them, and the collaboration spaces built on them, for API
    clients with bearer tokens."""
    router = APIRouter()
    router.include_router(
        tus_router(platform.storage_uploads, bearer_principal(platform.tokens), "/storage/uploads")
    )
    router.include_router(
        storage_routes.build_router(platform.storage, platform.storage_permissions, platform.tokens)
    )
    collab = platform.collab
    router.include_router(
        collab_routes.build_router(
            collab.spaces, collab.files, collab.tree, collab.editing, platform.tokens
        )
    )
    # Share links: their members' API, and the pages and downloads at /s/ for anyone with one.
    share_pages = SharePages(Languages(), platform.endpoints.secure_cookies)
    router.include_router(
        share_link_routes.build_router(collab.share_links, platform.tokens, share_pages)
    )
    router.include_router(app_password_routes.build_router(collab.app_passwords, platform.tokens))
    return router


def _include_storage(app: FastAPI, platform: Platform) -> None:
    """The storage and collaboration APIs, and WebDAV at /dav/ (a mount: WsgiDAV is its own
    application, behind app passwords instead of bearer tokens)."""
    app.include_router(_storage_router(platform))
    collab = platform.collab
    staging = platform.settings.data_dir / "tmp"
    services = DavServices(
        collab.spaces, collab.files, collab.tree, collab.dav_locks, collab.properties, staging
    )
    app.mount("/dav", DavMount(services, collab.app_passwords))


def _mount_matrix_proxy(app: FastAPI, platform: Platform) -> None:
    """The Messenger-Proxy in front of Synapse's client-server API (its SSO pages included);
    Synapse's admin API is never exposed."""
    hub = platform.messenger
    if hub is None:
        return
    proxy = MatrixProxy(hub.service, hub.media, hub.forwarder, platform.http_client)
    app.mount("/_matrix", proxy)
    app.mount("/_synapse/client", proxy)


def _include_messenger(app: FastAPI, platform: Platform) -> None:
    """The messenger's own API: login tokens, contacts, listings, case rooms, the directory."""
    hub = platform.messenger
    if hub is None:
        return
    app.include_router(messenger_routes.build_router(hub.service, platform.tokens))
    directory_base = f"{platform.settings.public_url}/directory/fhir"
    app.include_router(
        directory_routes.build_router(hub.directory_hub, platform.tokens, directory_base)
    )


def _landing_router(endpoints: Endpoints) -> APIRouter:
    """`/`: browsers go to the portal (which sends them to the login first); everything
    else gets the platform's entry points as JSON."""
    issuer, fhir = endpoints.issuer, endpoints.fhir_base_url
    links = {
        "portal": f"{issuer}/portal",
        "login": f"{issuer}/login",
        "docs": f"{issuer}/docs",
        "fhir": fhir,
        "capabilities": f"{fhir}/metadata",
        "smart_configuration": f"{issuer}/.well-known/smart-configuration",
        "readiness": f"{issuer}/readyz",
    }
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def landing(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/portal", status_code=303, headers=_LANDING_HEADERS)
        body = {"name": "medicus", "version": medicus.__version__, "links": links}
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
