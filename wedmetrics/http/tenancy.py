"""Tenants: a bearer token maps to an org (or ``*``, an operator who sees every org).

A tenant sees a series when the series carries its org (``org_id`` label), names
one of its weddings (``wedding_id`` label), or was stored under its org; a
wedding or an alert likewise.  Everything else is invisible to it: the hub
answers 404 as if the thing did not exist.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping

from .errors import ApiError

__all__ = ["OPERATOR", "ORG_LABEL", "WEDDING_LABEL", "Tenant", "TokenTable"]

OPERATOR = "*"
ORG_LABEL = "org_id"
WEDDING_LABEL = "wedding_id"


@dataclass(frozen=True)
class Tenant:
    """Who is asking: ``org`` (``"*"`` for operators) and ``key``, the identity
    that rate limits count by (a token's digest, or the client address)."""

    org: str
    key: str

    @property
    def operator(self) -> bool:
        return self.org == OPERATOR

    def sees_org(self, org: str | None) -> bool:
        return self.org == OPERATOR or (org is not None and org == self.org)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenTable:
    """Bearer tokens to orgs.  Tokens are kept only as SHA-256 digests and looked
    up by digest, so neither a dump of the hub nor response timing reveals them.

    Without tokens (``None`` or empty) every caller is an operator: the hub is
    then meant for 127.0.0.1 only (``serve`` refuses a public bind unless told
    ``--insecure``).
    """

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._orgs: dict[str, str] = {}
        for token, org in (tokens or {}).items():
            if not isinstance(token, str) or len(token) < 8:
                raise ValueError("every token must be a str of at least 8 characters")
            if not isinstance(org, str) or not org:
                raise ValueError(f"token for {org!r}: the org must be a non-empty str or '*'")
            self._orgs[_digest(token)] = org

    @property
    def enabled(self) -> bool:
        return bool(self._orgs)

    def orgs(self) -> set[str]:
        """The orgs tokens name (``"*"`` included when an operator token exists)."""
        return set(self._orgs.values())

    def resolve(self, authorization: str | None, client: str) -> Tenant:
        if not self._orgs:
            return Tenant(OPERATOR, f"addr:{client}")
        if not authorization:
            raise ApiError(401, "Authorization", "this hub needs 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Authorization", "use 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})
        digest = _digest(token)
        org = None
        for known, value in self._orgs.items():
            # compare against every digest, so timing says nothing about which matched
            if hmac.compare_digest(known, digest):
                org = value
        if org is None:
            raise ApiError(401, "Authorization", "unknown bearer token",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Tenant(org, f"token:{digest[:32]}")
