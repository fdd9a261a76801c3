"""The exception tree of Archipel.

Rejections of offers are *data* (see :mod:`archipel.core._verdicts`); only real
faults and bad input are exceptions::

    ArchipelError
    ├── InputError (also ValueError)      bad input the user can fix
    │   ├── SpecError                     a workload spec that does not validate
    │   ├── UnknownAcceleratorError       an accelerator name no offer uses
    │   └── PolicyError                   a policy file that does not validate
    └── CatalogError                      the offer snapshot cannot be built or read
"""

from __future__ import annotations


class ArchipelError(Exception):
    """Root of every exception raised on purpose by Archipel."""


class InputError(ArchipelError, ValueError):
    """Bad input: the message says what to change."""


class SpecError(InputError):
    """A workload spec failed validation; ``problems`` lists each field's issue."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid workload spec\n{lines}")


class UnknownAcceleratorError(InputError):
    """An accelerator name that no offer in the catalog uses."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown accelerator {name!r}.{hint} "
            "Run `archipel catalog --accelerators` to list the known names."
        )


class PolicyError(InputError):
    """A policy document failed validation."""


class CatalogError(ArchipelError):
    """The offer snapshot could not be built or loaded."""
