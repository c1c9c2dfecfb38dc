"""What an organisation's administrator types into its settings, checked before anything is
written: names, redirect URIs, JWKS, scopes, an upstream provider's issuer and client. A bad
value is an ApiError of 422 whose `errors` name the field (a JSON pointer such as `/name`)
with a sentence the portal shows next to it, in the user's language (the sentences are
catalogued); the error's `detail` may say more, in English, for API callers."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from ipaddress import ip_address
from urllib.parse import SplitResult, urlsplit

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from medicus.core.errors import ApiError, ErrorDetail, unprocessable
from medicus.core.i18n import translatable
from medicus.iam.roles import ClientKind
from medicus.iam.scopes import Context, ScopeError, parse_scopes

NAME_MAX = 200
URI_MAX = 2000
REDIRECT_URIS_MAX = 10
SCOPE_MAX = 2000
JWKS_MAX = 64 * 1024
ISSUER_MAX = 500
CLIENT_ID_MAX = 255
SECRET_MAX = 1000
LOOPBACK_NAMES = frozenset({"localhost"})


def invalid(field: str, message: str, detail: str | None = None) -> ApiError:
    """The refusal of the value of `field`: `message` (catalogued) next to it."""
    return unprocessable(detail or message, [ErrorDetail(message, pointer=f"/{field}")])


def _printable(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def checked_name(name: str, field: str = "name") -> str:
    """A name people read (a client's): 1 to 200 characters, no control characters."""
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX or not _printable(name):
        raise invalid(field, translatable("Please give a name of 1 to 200 characters."))
    return name


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _parts(url: str) -> SplitResult | None:
    """The parts of an absolute http(s) URL without user, fragment or blanks; None if it is
    not one."""
    if not url or any(c.isspace() for c in url) or not _printable(url):
        return None
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or not port_ok:
        return None
    if parts.fragment or "#" in url or parts.username is not None:
        return None
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return None
    return parts


def checked_redirect_uris(uris: Sequence[str]) -> list[str]:
    """A public app's redirect URIs: 1 to 10 absolute https URLs (http only to this
    computer's loopback, for native apps, RFC 8252 §7.3), without fragment."""
    given = [uri.strip() for uri in uris if uri.strip()]
    message = translatable(
        "Please give 1 to 10 redirect URIs, one per line, each starting with https:// "
        "(http:// only for 127.0.0.1 or localhost), without #fragment."
    )
    if not 1 <= len(given) <= REDIRECT_URIS_MAX:
        raise invalid("redirect_uris", message)
    for uri in given:
        if len(uri) > URI_MAX or _parts(uri) is None:
            raise invalid("redirect_uris", message, f"Not a redirect URI medicus accepts: {uri}")
    return list(dict.fromkeys(given))


def checked_issuer(issuer: str) -> str:
    """An upstream provider's issuer: an https URL (http only on loopback, for tests and
    development) without query or fragment, at most 500 characters."""
    issuer = issuer.strip().rstrip("/")
    parts = _parts(issuer) if len(issuer) <= ISSUER_MAX else None
    if parts is None or parts.query or "?" in issuer:
        raise invalid(
            "issuer",
            translatable(
                "Please give the provider's issuer URL, starting with https:// "
                "(as its /.well-known/openid-configuration names it)."
            ),
        )
    return issuer


def checked_upstream_client(client_id: str, secret: str | None) -> tuple[str, str | None]:
    """medicus's client id at an upstream provider (1 to 255 characters) and its secret
    (None: keep or have none; at most 1,000 characters)."""
    client_id = client_id.strip()
    if not 1 <= len(client_id) <= CLIENT_ID_MAX or not _printable(client_id):
        raise invalid(
            "client_id",
            translatable("Please give the client id of 1 to 255 characters the provider issued."),
        )
    if secret is not None and (len(secret) > SECRET_MAX or not _printable(secret)):
        raise invalid(
            "client_secret", translatable("A client secret has at most 1,000 characters.")
        )
    return client_id, secret or None


def checked_scope(scope: str, kind: ClientKind) -> str:
    """The scopes a client is registered for, as typed: valid SMART, at least one, and of
    its kind: `system/…` scopes for a backend service only, none of them for an app. Whether
    each resource type exists is checked when the client is created."""
    scope = " ".join(scope.split())
    backend = kind is ClientKind.BACKEND
    message = (
        translatable("Please give system/… scopes separated by spaces, e.g. system/*.rs.")
        if backend
        else translatable(
            "Please give SMART scopes separated by spaces (no system/… scopes), "
            "e.g. openid fhirUser user/*.rs."
        )
    )
    if not scope or len(scope) > SCOPE_MAX:
        raise invalid("scope", message)
    try:
        parsed = parse_scopes(scope)
    except ScopeError as error:
        raise invalid("scope", message, str(error)) from None
    system = {r.context is Context.SYSTEM for r in parsed.resources}
    if backend and (parsed.other or system != {True}):
        raise invalid("scope", message, "A backend service gets system/… scopes only.")
    if not backend and True in system:
        raise invalid("scope", message, "system/… scopes are for backend services.")
    return scope


def checked_jwks(text: str) -> dict[str, object]:
    """A backend service's public keys: a JWKS (JSON object with a non-empty `keys` list)
    that joserfc can read, without private keys."""
    unreadable = translatable(
        'Please paste a JWKS: a JSON object with a list of public keys, {"keys": [...]}.'
    )
    try:
        loaded = orjson.loads(text) if len(text) <= JWKS_MAX else None
    except orjson.JSONDecodeError:
        loaded = None
    keys = loaded.get("keys") if isinstance(loaded, dict) else None
    if not isinstance(loaded, dict) or not isinstance(keys, list) or not keys:
        raise invalid("jwks", unreadable)
    try:
        key_set = KeySet.import_key_set(loaded)  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError) as error:
        raise invalid("jwks", unreadable, f"The JWKS cannot be read: {error}") from None
    if any(key.is_private for key in key_set.keys):
        raise invalid(
            "jwks",
            translatable(
                "This JWKS holds a private key. Paste only the public keys, and keep the "
                "private key with the service."
            ),
        )
    return loaded
