"""HTTP of the FHIR hub: each route turns a Starlette request into a `FhirRequest` (the
headers FHIR defines, the body parsed by its content type), lets `FhirRouter` answer it — the
same router that runs the entries of bundles — and renders the `FhirResponse` with ETag,
Last-Modified and Location. Only what is HTTP's own stays here: the CapabilityStatement's
compression and the bundle endpoint."""

from __future__ import annotations

import gzip
from email.utils import format_datetime

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.convertors import StringConvertor, register_url_convertor

from medicus.core.errors import FHIR_JSON, ApiError
from medicus.core.http import is_json_media_type
from medicus.fhir.binary_http import asks_for_resource, binary_response
from medicus.fhir.bundles import BundleService
from medicus.fhir.resources import StoredVersion, parse_body
from medicus.fhir.router import FhirRequest, FhirResponse, FhirRouter, Unparsed, check_format
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService


class _ResourceTypeConvertor(StringConvertor):
    """A resource type in a path is letters (`Patient`): paths such as
    `/fhir/.well-known/smart-configuration` are not mistaken for a read and reach their own
    routes, which lets the FHIR routes come first in the app (Starlette tries routes in
    order, ~2 µs each). `AuditEvent` is not the hub's: the audit trail's view serves it
    (`access.routes`), read-only."""

    regex = "(?!AuditEvent(?:/|$))[A-Za-z]+"


register_url_convertor("resource_type", _ResourceTypeConvertor())


class _OperationConvertor(StringConvertor):
    """An operation's name in a path (`$lastn`): answered by its own route, or as not
    supported, never read as an id."""

    regex = r"\$[^/]*"


register_url_convertor("operation", _OperationConvertor())


class _IdConvertor(StringConvertor):
    """A FHIR id in a path: `_history` and `$meta` are no ids."""

    regex = r"[A-Za-z0-9\-.]{1,64}"


register_url_convertor("fhir_id", _IdConvertor())

_FHIR_HEADERS = (
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-none-exist",
    "prefer",
    "x-security-context",  # a Binary's securityContext, when its bytes are the body
)
_TYPE = "/{resource_type:resource_type}"
_INSTANCE = _TYPE + "/{fhir_id}"
# (path, methods, summary): every FHIR interaction that HTTP reaches; the router tells them
# apart. Operations without a route of their own are answered as not supported.
_INTERACTIONS: tuple[tuple[str, list[str], str | None], ...] = (
    ("/_history", ["GET"], "history of everything the caller may read"),
    (_TYPE + "/_history", ["GET"], "history of one resource type"),
    (_TYPE + "/$validate", ["POST"], "validate without storing"),
    ("/Patient/{fhir_id}/$everything", ["GET"], "everything about a patient"),
    (_INSTANCE + "/$meta", ["GET"], "the meta of a resource"),
    ("/Observation/$lastn", ["GET"], "the newest observations of each code"),
    (_TYPE + "/{operation:operation}", ["GET", "POST"], None),
    (_INSTANCE + "/{operation:operation}", ["GET", "POST"], None),
    (_TYPE, ["GET"], "search"),
    (_TYPE, ["POST"], "create (conditional with If-None-Exist)"),
    (_TYPE, ["PUT"], "conditional update"),
    (_TYPE, ["PATCH"], "conditional patch (JSON or FHIRPath Patch)"),
    (_TYPE, ["DELETE"], "conditional delete"),
    (_TYPE + "/_search", ["POST"], "search with a form body"),
    (_INSTANCE, ["GET"], "read"),
    (_INSTANCE, ["PUT"], "update (or create with this id)"),
    (_INSTANCE, ["PATCH"], "patch (JSON or FHIRPath Patch)"),
    (_INSTANCE, ["DELETE"], "delete"),
    (_INSTANCE + "/_history/{version}", ["GET"], "vread"),
    (_INSTANCE + "/_history", ["GET"], "history of one resource"),
)


async def _body(request: Request) -> Unparsed | None:
    """A write's or a form search's body, as received: the interaction parses it."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    return Unparsed(request.headers.get("content-type", ""), await request.body())


async def fhir_request(request: Request) -> FhirRequest:
    """The FHIR interaction an HTTP request asks for."""
    headers = {name: request.headers[name] for name in _FHIR_HEADERS if name in request.headers}
    return FhirRequest(
        method=request.method,
        path=request.scope["path"].split("/fhir/", 1)[-1],
        query=list(request.query_params.multi_items()),
        headers=headers,
        body=await _body(request),
    )


def _headers(stored: StoredVersion, base: str) -> dict[str, str]:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }
    if stored.created:
        headers["Location"] = (
            f"{base}/{stored.resource_type}/{stored.fhir_id}/_history/{stored.version}"
        )
    return headers


def http_response(answer: FhirResponse, base: str) -> Response:
    headers = {} if answer.version is None else _headers(answer.version, base)
    if answer.body is None:
        return Response(status_code=answer.status, headers=headers)
    return Response(answer.body, status_code=answer.status, media_type=FHIR_JSON, headers=headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (`gzip`, `*`, not with `q=0`)."""
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            weight = parameters.strip().removeprefix("q=").strip() if parameters else "1"
            return weight not in ("0", "0.0", "0.00", "0.000")
    return False


def build_router(
    router: FhirRouter,
    bundles: BundleService,
    tokens: TokenService,
    base: str,
) -> APIRouter:
    """The FHIR routes; `base` is the hub's public base URL (`MEDICUS_PUBLIC_URL` + `/fhir`),
    the root of every URL in answers, whatever `Host` a request names."""
    routes = APIRouter(prefix="/fhir", tags=["fhir"])
    caller = Depends(bearer_principal(tokens))
    capability_bytes = router.capabilities
    capability_gzipped = gzip.compress(capability_bytes)

    @routes.get("/metadata", summary="CapabilityStatement")
    async def metadata(request: Request) -> Response:
        """~700 KB of JSON (every parameter and include of every type), which clients fetch
        at start: compressed once (~25 KB) for those that accept gzip."""
        check_format(list(request.query_params.multi_items()))
        vary = {"Vary": "Accept-Encoding"}
        if _accepts_gzip(request.headers.get("accept-encoding", "")):
            headers = {**vary, "Content-Encoding": "gzip"}
            return Response(capability_gzipped, media_type=FHIR_JSON, headers=headers)
        return Response(capability_bytes, media_type=FHIR_JSON, headers=vary)

    @routes.post("", summary="transaction or batch")
    @routes.post("/", include_in_schema=False)
    async def bundle(request: Request, principal: Principal = caller) -> Response:
        check_format(list(request.query_params.multi_items()))
        if not is_json_media_type(request.headers.get("content-type")):
            raise ApiError(
                415, "Send the resource as application/fhir+json.", issue_type="not-supported"
            )
        body = await parse_body(await request.body())
        answer = await bundles.process(principal, body, request.headers.get("prefer"))
        return Response(orjson.dumps(answer), media_type=FHIR_JSON)

    async def interaction(request: Request, principal: Principal = caller) -> Response:
        answer = await router.handle(principal, await fhir_request(request))
        return http_response(answer, base)

    @routes.get("/Binary/{fhir_id:fhir_id}", summary="read a Binary: its bytes, or FHIR JSON")
    async def binary(request: Request, fhir_id: str, principal: Principal = caller) -> Response:
        """The bytes in their own type, unless FHIR is asked for (`binary_http`)."""
        if asks_for_resource(request.query_params, request.headers.get("accept", "")):
            return await interaction(request, principal)
        return await binary_response(router.stored, principal, fhir_id, request.headers)

    for path, methods, summary in _INTERACTIONS:
        routes.add_api_route(
            path,
            interaction,
            methods=methods,
            summary=summary,
            include_in_schema=summary is not None,
            name=summary,
        )
    return routes
