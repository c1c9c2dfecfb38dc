"""Where the OpenID Connect provider lives, and what it announces in discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoints:
    """Where the provider lives, as announced in discovery."""

    issuer: str
    fhir_base_url: str
    secure_cookies: bool

    @property
    def authorize(self) -> str:
        return f"{self.issuer}/oauth/authorize"

    @property
    def token(self) -> str:
        return f"{self.issuer}/oauth/token"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize,
            "token_endpoint": self.token,
            "jwks_uri": f"{self.issuer}/oauth/jwks",
            "userinfo_endpoint": f"{self.issuer}/oauth/userinfo",
            "introspection_endpoint": f"{self.issuer}/oauth/introspect",
            "revocation_endpoint": f"{self.issuer}/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384", "ES256"],
            "scopes_supported": ["openid", "fhirUser", "profile", "offline_access"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "email",
                "name",
                "fhirUser",
                "org",
            ],
        }

    def smart_configuration(self) -> dict[str, Any]:
        discovery = self.discovery()
        keys = (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "introspection_endpoint",
            "revocation_endpoint",
            "grant_types_supported",
            "code_challenge_methods_supported",
            "token_endpoint_auth_methods_supported",
            "token_endpoint_auth_signing_alg_values_supported",
            "response_types_supported",
        )
        return {
            **{key: discovery[key] for key in keys},
            "scopes_supported": [
                "openid",
                "fhirUser",
                "offline_access",
                "online_access",
                "launch",
                "launch/patient",
                "patient/*.cruds",
                "user/*.cruds",
                "system/*.cruds",
            ],
            "capabilities": [
                "launch-standalone",
                "client-public",
                "client-confidential-asymmetric",
                "sso-openid-connect",
                "context-standalone-patient",
                "permission-offline",
                "permission-patient",
                "permission-user",
                "permission-v1",
                "permission-v2",
            ],
        }
