"""Console sessions: a signed cookie that names an API token, and CSRF tokens bound to it.

Signing in exchanges an API token for a session. The cookie holds no secret:
only the token's public id, a random nonce and an expiry, signed with
HMAC-SHA256 under the server's console key. Every request checks the
signature, the expiry, and that the token is still active, so revoking a token
(``archipel token revoke``) also ends the sessions opened with it.

A state-changing form carries a CSRF token derived from the session's nonce
(HMAC under the same key, with a purpose of its own): a page of another site
can neither read it nor compute it. The sign-in form, which comes before any
session, is bound the same way to a nonce in a short-lived cookie of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

#: the session cookie; ``__Host-`` would require HTTPS, which a loopback server lacks
SESSION_COOKIE = "archipel_session"
#: the nonce the sign-in form is bound to, set when the form is shown
LOGIN_COOKIE = "archipel_login"
#: how long a session lasts from sign-in (seconds): a working day
SESSION_SECONDS = 12 * 3600
#: how long a sign-in form may wait before it is submitted (seconds)
LOGIN_SECONDS = 3600
#: the shortest console key accepted, in bytes
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    """An open session: the API token it was opened with (by id) and its own nonce."""

    token_id: str
    nonce: str
    expires: int  # seconds since the epoch


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks sessions and CSRF tokens under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the console key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{text}".encode(), hashlib.sha256).digest())

    def open(self, token_id: str, now: float) -> tuple[Session, str]:
        """A new session for ``token_id`` and its cookie value."""
        session = Session(token_id, secrets.token_urlsafe(16), int(now) + SESSION_SECONDS)
        body = _b64(json.dumps([session.token_id, session.nonce, session.expires]).encode())
        return session, f"{body}.{self._mac('session', body)}"

    def read(self, cookie: str | None, now: float) -> Session | None:
        """The session a cookie holds, or ``None``: missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            token_id, nonce, expires = json.loads(_unb64(body))
        except (ValueError, binascii.Error, TypeError):
            return None
        if not (isinstance(token_id, str) and isinstance(nonce, str) and isinstance(expires, int)):
            return None
        return Session(token_id, nonce, expires) if now < expires else None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session (or sign-in form) with ``nonce``."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, sent: str | None) -> bool:
        """Whether ``sent`` is the CSRF token of ``nonce`` (both present)."""
        if not nonce or not sent:
            return False
        return hmac.compare_digest(self.csrf(nonce), sent)

    def login_nonce(self, now: float) -> str:
        """A signed nonce for a sign-in form, valid for :data:`LOGIN_SECONDS`."""
        body = f"{secrets.token_urlsafe(16)}~{int(now) + LOGIN_SECONDS}"
        return f"{body}.{self._mac('login', body)}"

    def login_ok(self, cookie: str | None, sent: str | None, now: float) -> bool:
        """Whether a sign-in form's CSRF token matches its cookie, still in time."""
        if not cookie or cookie.count(".") != 1:
            return False
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("login", body)):
            return False
        _, _, expires = body.rpartition("~")
        if not expires.isdigit() or now >= int(expires):
            return False
        return self.csrf_ok(cookie, sent)
