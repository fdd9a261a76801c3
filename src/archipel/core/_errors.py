"""The exception tree of Archipel.

Rejections of offers are *data* (see :mod:`archipel.core._verdicts`); only real
faults and bad input are exceptions::

    ArchipelError
    ├── InputError (also ValueError)      bad input the user can fix
    │   ├── DocumentError                 a document that does not validate, one line a field
    │   │   └── SpecError                 a workload or fleet spec
    │   ├── UnknownAcceleratorError       an accelerator name no offer uses
    │   ├── UnknownNameError              a provider or region name the catalog does not know
    │   └── PolicyError                   a policy file that does not validate
    ├── CatalogError                      the offer snapshot cannot be built or read
    └── SolverError                       a solver's answer failed its check (no plan given)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArchipelError(Exception):
    """Root of every exception raised on purpose by Archipel."""


class InputError(ArchipelError, ValueError):
    """Bad input: the message says what to change."""


class DocumentError(InputError):
    """A document failed validation; ``problems`` names each field and what to change.

    Subclasses say what kind of document it is (``what``), so that every invalid
    document reads the same way: its source and kind, then one line per problem.
    """

    what = "document"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid {self.what}\n{lines}")


class SpecError(DocumentError):
    """A workload spec failed validation; ``problems`` lists each field's issue."""

    what = "workload spec"


class UnknownAcceleratorError(InputError):
    """An accelerator name that no offer in the catalog uses."""

    def __init__(self, name: str, suggestions: list[str], note: str = "") -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        why = f" ({note})" if note else ""
        super().__init__(
            f"unknown accelerator {name!r}{why}.{hint} "
            "Run `archipel catalog --accelerators` to list the known names."
        )


class UnknownNameError(InputError):
    """A provider or region name that the catalog does not know.

    ``where`` names the field or flag; the message suggests close names and
    lists the known ones.
    """

    def __init__(
        self, where: str, kind: str, name: str, known: Iterable[str], at: str = ""
    ) -> None:
        self.where = where
        self.kind = kind
        self.name = name
        choices = sorted(set(known))
        folded = name.lower()
        near = [c for c in choices if len(folded) >= 2 and folded in c.lower()]
        near += difflib.get_close_matches(folded, choices, n=3, cutoff=0.6)
        self.suggestions = list(dict.fromkeys(near))[:3]
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        at = f" at {at}" if at else ""
        listing = f"known {kind}s{at}: {', '.join(choices)}" if choices else f"no known {kind}{at}"
        super().__init__(f"{where}: unknown {kind} {name}{at}{hint} ({listing})")


class PolicyError(InputError):
    """A policy document failed validation."""


class CatalogError(ArchipelError):
    """The offer snapshot could not be built or loaded."""


class SolverError(ArchipelError):
    """A solver returned an answer that fails its own check: it is not given as a plan."""
