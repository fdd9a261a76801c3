"""API tokens: issued once, stored as a hash, verified with a short cache, revoked.

A token reads ``arch_<id>_<secret>``: ``id`` is the public part (what
``archipel token revoke`` takes), and only the SHA-256 of the secret is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from sqlalchemy.orm import Session, sessionmaker

from archipel.controlplane._models import TokenRow
from archipel.controlplane._records import Principal, now
from archipel.core import InputError

ROLES = ("admin", "submitter", "viewer")

#: a tenant's name: a slug that fits the tenant columns (100 characters)
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: verified tokens remembered at most, before the cache is emptied
_CACHE_SIZE = 10_000


class Tokens:
    """The token table, with a cache of verified tokens in front of it."""

    def __init__(self, session: sessionmaker[Session], cache_seconds: float = 5.0) -> None:
        self._session = session
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    def create(self, tenant: str, role: str) -> str:
        """A new API token for ``tenant`` with ``role``; the secret is shown once.

        A token is where a tenant comes into being, so its name is checked here:
        letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if TENANT_NAME.fullmatch(tenant) is None:
            raise InputError(
                f"{tenant!r:.60} is not a tenant name: use 1 to 100 letters, digits, '.', '_' "
                "or '-', starting with a letter or a digit (e.g. acme)"
            )
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self._session.begin() as s:
            s.add(
                TokenRow(
                    id=token_id,
                    tenant=tenant,
                    role=role,
                    secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
                    created_at=now(),
                    revoked_at=None,
                )
            )
        return f"arch_{token_id}_{secret}"

    def authenticate(self, token: str) -> Principal | None:
        """The principal behind a bearer token, or ``None`` (unknown, malformed or revoked).

        A verified token is remembered for :attr:`cache_seconds` so that a busy
        client does not cost a database read per request; a revocation by another
        process therefore takes effect within that time, one by this object at
        once. With 0, every call reads the database.
        """
        digest_key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest_key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        principal = self._verify(token)
        if principal is not None:
            if len(self._cache) > _CACHE_SIZE:
                self._cache.clear()
            self._cache[digest_key] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    def active(self, token_id: str) -> Principal | None:
        """The principal of the token with public id ``token_id`` while it is not revoked.

        For a session opened with a token (the console's): the session names the
        token by id and holds no secret. Remembered like :meth:`authenticate`.
        """
        key = f"id:{token_id}"
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self._session() as s:
            row = s.get(TokenRow, token_id)
            if row is None or row.revoked_at is not None:
                return None
            principal = Principal(row.tenant, row.role, row.id)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    def _verify(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "arch":
            return None
        with self._session() as s:
            row = s.get(TokenRow, parts[1])
            if row is None or row.revoked_at is not None:
                return None
            digest = hashlib.sha256(parts[2].encode()).hexdigest()
            if not hmac.compare_digest(digest, row.secret_sha256):
                return None
            return Principal(row.tenant, row.role, row.id)

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; ``False`` when there is no such active token."""
        self._cache = {k: v for k, v in self._cache.items() if v[0].token_id != token_id}
        with self._session.begin() as s:
            row = s.get(TokenRow, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = now()
            return True
