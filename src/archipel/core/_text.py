"""Text that every layer below a spec accepts: a process, a database, a JSON encoder.

A NUL character cannot be passed to a process (``execve`` ends a string there)
nor stored by PostgreSQL; a lone surrogate (``"\\ud800"``, which JSON can spell)
cannot be encoded as UTF-8 at all. A spec field that holds free text is
:data:`PlainText`, so such a value is refused when the spec is read, naming the
field, rather than failing later in whatever touches it first.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _plain(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\x00); remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "is not valid Unicode text (it holds a lone surrogate such as \\ud800); remove it"
        ) from None
    return value


#: a string with no NUL character and no lone surrogate
PlainText = Annotated[str, AfterValidator(_plain)]
