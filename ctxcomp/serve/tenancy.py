"""API keys: which tenant a request belongs to, and which key the upstream gets.

A client's key is read from ``Authorization: Bearer``, ``x-api-key`` or ``api-key``. Its
tenant namespace is a salted SHA-256 of the key (``t-`` + 32 hex digits): the key itself is
never stored, logged or sent anywhere but to the upstream, and only in pass-through mode.
In configured mode (``upstream_api_key_env``) every client auth header is removed and the
proxy's own key is set: the two are never mixed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from .config import AUTH_HEADERS, ServeConfig

ANONYMOUS = "anonymous"


def client_key(headers: Iterable[tuple[str, str]]) -> str | None:
    """The API key a client sent (``headers`` as lower-case (name, value) pairs)."""
    found: dict[str, str] = {}
    for name, value in headers:
        if name in AUTH_HEADERS and name not in found:
            found[name] = value
    auth = found.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    for name in ("x-api-key", "api-key"):
        if found.get(name, "").strip():
            return found[name].strip()
    return None


class Tenancy:
    """Namespaces, the optional client allow-list, and upstream auth headers."""

    def __init__(self, config: ServeConfig) -> None:
        self.mode = config.tenancy
        self.shared_namespace = str(config.pipeline.get("namespace", "default"))
        salt = os.environ.get(config.tenant_salt_env, "") if config.tenant_salt_env else ""
        self._salt = salt.encode()
        self.upstream_key = (
            os.environ[config.upstream_api_key_env] if config.upstream_api_key_env else None
        )
        allowed = os.environ.get(config.client_keys_env, "") if config.client_keys_env else ""
        # only digests are held, compared in constant time
        self._allowed = [self._digest(k.strip()) for k in allowed.split(",") if k.strip()]
        self.restricted = bool(config.client_keys_env)

    def _digest(self, key: str) -> bytes:
        return hashlib.sha256(self._salt + b"\0" + key.encode()).digest()

    def namespace(self, key: str | None) -> str:
        if self.mode == "shared":
            return self.shared_namespace
        if key is None:
            return ANONYMOUS
        return "t-" + self._digest(key).hex()[:32]

    def allowed(self, key: str | None) -> bool:
        if not self.restricted:
            return True
        if key is None:
            return False
        d = self._digest(key)
        return any(hmac.compare_digest(d, a) for a in self._allowed)

    def upstream_auth(self, auth_header: str) -> list[tuple[str, str]]:
        """Headers that carry the configured key (empty in pass-through mode)."""
        if self.upstream_key is None:
            return []
        if auth_header == "authorization":
            return [("authorization", f"Bearer {self.upstream_key}")]
        return [(auth_header, self.upstream_key)]

    @property
    def pass_through(self) -> bool:
        return self.upstream_key is None
