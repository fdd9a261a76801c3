"""Pages and fragments from the package's Jinja2 templates, with the console's headers.

Every answer carries a strict Content-Security-Policy (scripts, styles and
images from the console's own origin only: no inline script, no CDN), denies
framing, and is never cached by a shared cache. A fragment that htmx polls
also carries an ``ETag`` (a hash of its body): sent back in
``If-None-Match``, it gets a bodiless 304 while nothing changed, and the page
keeps what it shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache, private",
}


def when(value: datetime | None) -> str:
    """A time as the store keeps it (naive UTC), as a person reads it."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | Decimal) -> str:
    """A count as a person writes it: ``1``, ``0.5``, never ``1.0`` or ``1E+1``."""
    return format(Decimal(str(value)).normalize(), "f")


def money(value: Decimal) -> str:
    """An exact amount as the report prints it: to the cent, half-even, thousands apart."""
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_EVEN):,}"


def percent(share: Decimal) -> str:
    """A share (0 to 1) as the report prints it: ``12.3%``."""
    return f"{(share * 100).quantize(Decimal('0.1'), ROUND_HALF_EVEN)}%"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("archipel.console", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a name a template misspells is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["money"] = money
    env.filters["percent"] = percent
    env.filters["decimal"] = Decimal  # a JSON document's exact amounts are strings
    return env


TEMPLATES = _environment()


def render(name: str, context: Mapping[str, Any]) -> str:
    return TEMPLATES.get_template(name).render(**context)


def page(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A whole page (or a form's answer), with the console's headers."""
    body = render(name, {"base": base(request), **context})
    return HTMLResponse(body, status_code=status, headers={**HEADERS, **(headers or {})})


def fragment(request: Request, name: str, context: Mapping[str, Any]) -> Response:
    """A polled fragment: 304 without a body while its ``ETag`` still matches."""
    body = render(name, {"base": base(request), **context}).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    sent = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in sent.split(",")}:
        return Response(status_code=304, headers={**HEADERS, "ETag": etag})
    return HTMLResponse(body, headers={**HEADERS, "ETag": etag})


def base(request: Request) -> str:
    """Where the console is mounted (``/ui``): every link it renders starts there."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
