"""Files posted from a form (``multipart/form-data``), read with the standard library.

The console takes two uploads (a simulation's scenario and trace, a fleet file),
small text files under the server's ``--max-body``, which the HTTP layer already
enforces before a handler runs. The standard library's MIME parser reads such a
body whole; no other multipart library is needed for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import Request

from archipel.console._auth import RefusedError


@dataclass(frozen=True, slots=True)
class Part:
    """One field of a posted form: a file's name (``None`` for a plain field) and bytes."""

    filename: str | None
    data: bytes

    def text(self, what: str) -> str:
        """The part as UTF-8 text; a refusal that names ``what`` when it is not."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise RefusedError(400, f"{what} is not UTF-8 text") from None


async def multipart(request: Request) -> dict[str, Part]:
    """The posted form's fields by name (the first of each), files and plain fields alike."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise RefusedError(400, "send the form as multipart/form-data (the page's own form)")
    body = await request.body()
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode("latin-1") + body
    )
    if not message.is_multipart():
        raise RefusedError(400, "the posted form could not be read; send it again")
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name in parts:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts[name] = Part(part.get_filename(), data)
    return parts


def plain(parts: dict[str, Part], name: str) -> str:
    """A plain field of the form (the CSRF token), ``""`` when it is missing."""
    part = parts.get(name)
    return "" if part is None else part.data.decode("utf-8", "replace")
