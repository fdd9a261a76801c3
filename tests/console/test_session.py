"""Sessions and CSRF tokens: what one key signs another cannot forge, and nothing outlives
its expiry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.console._session import LOGIN_SECONDS, SESSION_SECONDS, Signer

NOW = 1_800_000_000.0
SIGNER = Signer(b"a" * 32)
OTHER = Signer(b"b" * 32)


def test_a_session_reads_back_as_opened_until_it_expires() -> None:
    session, cookie = SIGNER.open("tok123", NOW)
    assert SIGNER.read(cookie, NOW) == session
    assert SIGNER.read(cookie, NOW + SESSION_SECONDS - 1) == session
    assert SIGNER.read(cookie, NOW + SESSION_SECONDS) is None


def test_another_key_reads_no_session() -> None:
    _, cookie = SIGNER.open("tok123", NOW)
    assert OTHER.read(cookie, NOW) is None


@given(position=st.integers(min_value=0), char=st.sampled_from("AQgw-_x."))
def test_a_changed_cookie_reads_no_session(position: int, char: str) -> None:
    _, cookie = SIGNER.open("tok123", NOW)
    i = position % len(cookie)
    changed = cookie[:i] + char + cookie[i + 1 :]
    if changed != cookie:
        assert SIGNER.read(changed, NOW) is None


@pytest.mark.parametrize("cookie", [None, "", ".", "a.b.c", "e30.", "not base64!.x"])
def test_garbage_reads_no_session(cookie: str | None) -> None:
    assert SIGNER.read(cookie, NOW) is None


def test_a_csrf_token_belongs_to_one_session_and_one_key() -> None:
    first, _ = SIGNER.open("tok123", NOW)
    second, _ = SIGNER.open("tok123", NOW)
    token = SIGNER.csrf(first.nonce)
    assert SIGNER.csrf_ok(first.nonce, token)
    assert not SIGNER.csrf_ok(second.nonce, token)
    assert not OTHER.csrf_ok(first.nonce, token)
    assert not SIGNER.csrf_ok(first.nonce, "")
    assert not SIGNER.csrf_ok(first.nonce, None)


def test_a_sign_in_form_is_good_for_an_hour_with_its_own_cookie() -> None:
    nonce = SIGNER.login_nonce(NOW)
    token = SIGNER.csrf(nonce)
    assert SIGNER.login_ok(nonce, token, NOW + LOGIN_SECONDS - 1)
    assert not SIGNER.login_ok(nonce, token, NOW + LOGIN_SECONDS)
    assert not SIGNER.login_ok(SIGNER.login_nonce(NOW), token, NOW)  # another form's cookie
    assert not OTHER.login_ok(nonce, token, NOW)
    assert not SIGNER.login_ok(None, token, NOW)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Signer(b"short")
