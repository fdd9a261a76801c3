"""Accelerator names: one canonical name per model, whatever a catalog calls it.

Catalogs spell the same device differently (``A100-80G-PCIe`` at Hyperstack,
``A100-80GB`` elsewhere; ``RTX-A6000``, ``RTXA6000`` and ``A6000``). The alias
table below folds them into one canonical name so that a request for ``H100``
sees every H100 offer. Form factors (SXM, PCIe, NVLink bridges, GCP's "Mega"
networking) are folded into the model: the planner compares models, and the
instance type tells the form factor. Names not listed map to themselves.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from archipel.core._errors import InputError, UnknownAcceleratorError
from archipel.core._text import PlainText

_ALIASES: dict[str, str] = {
    # H100 family (80 GB): SXM5, PCIe, NVLink pairs, GCP a3-mega networking
    "H100-80G-SXM5": "H100",
    "H100-80G-PCIe": "H100",
    "H100-80G-PCIe-NVLink": "H100",
    "H100-MEGA": "H100",
    "H100-SXM": "H100",
    "H100-NVLINK": "H100",
    "H100-NVL": "H100",
    # A100 80 GB (the plain name "A100" is the 40 GB part)
    "A100-80G-PCIe": "A100-80GB",
    "A100-80G-PCIe-NVLink": "A100-80GB",
    "A100-80GB-SXM": "A100-80GB",
    "H200-SXM": "H200",
    # workstation parts
    "RTX-A6000": "RTXA6000",
    "A6000": "RTXA6000",
    "RTX-A4000": "RTXA4000",
    "A4000": "RTXA4000",
    "RTX-6000-Ada": "RTX6000-Ada",
    "RTX6000Ada": "RTX6000-Ada",
    "RTX 3070": "RTX3070",
    "RTX-PRO-6000": "RTXPRO6000",
    "RTX PRO 6000 96GB": "RTXPRO6000",
    "RTXPRO6000WS": "RTXPRO6000",
    "RTXPRO6000S": "RTXPRO6000",
    "Radeon MI25": "MI25",
}


#: names people type for a device that are not a catalog's model name: cloud instance
#: families (AWS ``p5`` carries H100s) and short model names. Each maps to the model it
#: carries; a model no offer carries makes the name unknown, with the closest suggested.
_FAMILIES: dict[str, str] = {
    "trn1": "Trainium",
    "trn1n": "Trainium",
    "Trainium1": "Trainium",
    "trn2": "Trainium2",
    "inf1": "Inferentia",
    "inf2": "Inferentia2",
    "p4d": "A100",
    "p4de": "A100-80GB",
    "p5": "H100",
    "p5e": "H200",
    "p5en": "H200",
    "p6-b200": "B200",
    "g4dn": "T4",
    "g5": "A10G",
    "g6": "L4",
    "g6e": "L40S",
    "MI300": "MI300X",
    "MI355": "MI355X",
}


def _fold(name: str) -> str:
    """Case- and punctuation-insensitive key used to match user input."""
    return re.sub(r"[\s_\-]", "", name).upper()


def canonical_accelerator(name: str) -> str:
    """The canonical name of a catalog's accelerator name (stripped, aliases folded)."""
    name = name.strip()
    return _ALIASES.get(name, name)


#: the most accelerators (or shares of one) a request may ask for per node
MAX_ACCELERATORS_PER_NODE = 1024


def _count(value: Any) -> Any:
    """A number of accelerators per node: a finite number in (0, 1024], never a bool or text."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_ACCELERATORS_PER_NODE  # False for NaN too
    ):
        shown = repr(value)
        raise ValueError(
            (f"{shown} is not a number of accelerators per node: " if len(shown) <= 20 else "")
            + f"write a number greater than 0 and at most {MAX_ACCELERATORS_PER_NODE} "
            "(e.g. 8, or 0.5 for a share of one)"
        )
    return value


@dataclass(frozen=True, slots=True)
class AcceleratorRequest:
    """``count`` accelerators of one ``model`` per node (canonical name).

    The annotations are what a workload spec accepts (pydantic validates them
    there); constructing one in code checks nothing.
    """

    model: Annotated[PlainText, Field(min_length=1, max_length=100)]
    count: Annotated[
        float,
        BeforeValidator(_count),
        Field(gt=0, le=MAX_ACCELERATORS_PER_NODE, allow_inf_nan=False),
    ]

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        return f"{self.model}:{count}"

    @property
    def is_cpu(self) -> bool:
        """``cpu:N``: N slots of a machine, not devices a backend allocates."""
        return self.model.strip().lower() == "cpu"


_SPEC = re.compile(r"^\s*(?P<model>[^:]+?)\s*(?::\s*(?P<count>[0-9]*\.?[0-9]+)\s*)?$")


def parse_accelerator_spec(spec: str) -> AcceleratorRequest:
    """Parse ``MODEL:COUNT`` (count defaults to 1); the model is *not* resolved yet."""
    match = _SPEC.match(spec)
    if match is None or not match["model"]:
        raise InputError(
            f"accelerator {spec!r} is not of the form MODEL:COUNT (for example H100:8)"
        )
    count = float(match["count"]) if match["count"] else 1.0
    if count <= 0:
        raise InputError(f"accelerator {spec!r}: the count must be positive")
    return AcceleratorRequest(model=match["model"], count=count)


_FOLDED_FAMILIES = {_fold(k): v for k, v in _FAMILIES.items()}


def resolve_accelerator(name: str, known: Iterable[str]) -> str:
    """Resolve a user-typed accelerator name against the catalog's canonical names.

    Matching ignores case, spaces, dashes and underscores and honours aliases
    and instance families (``p5`` is H100, ``trn1`` is Trainium); an unknown
    name raises :class:`UnknownAcceleratorError` with suggestions.
    """
    by_fold: dict[str, str] = {}
    for canonical in known:
        by_fold.setdefault(_fold(canonical), canonical)
    for alias, canonical in _ALIASES.items():
        if _fold(canonical) in by_fold:
            by_fold.setdefault(_fold(alias), by_fold[_fold(canonical)])
    hit = by_fold.get(_fold(name))
    if hit is not None:
        return hit
    carried = _FOLDED_FAMILIES.get(_fold(name))
    if carried is not None:
        hit = by_fold.get(_fold(carried))
        if hit is not None:
            return hit
        close = difflib.get_close_matches(_fold(carried), list(by_fold), n=3, cutoff=0.6)
        raise UnknownAcceleratorError(
            name,
            sorted({by_fold[c] for c in close}),
            note=f"{name} carries {carried}, which no offer in the catalog has",
        )
    close = difflib.get_close_matches(_fold(name), list(by_fold), n=3, cutoff=0.6)
    raise UnknownAcceleratorError(name, sorted({by_fold[c] for c in close}))
