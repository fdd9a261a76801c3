"""Spot availability traces: one zone and instance type, one reading per tick.

The file format is the one of the *Can't Be Late* traces (NSDI'24, shared under
``traces/spot``): ``{"metadata": {"gap_seconds": N}, "data": [n0, n1, ...]}``,
each ``n`` the number of spot instances that could be obtained at that tick
(0 = none). The loader checks every field and names the file in each error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archipel.core import InputError

#: a trace larger than this is refused before it is parsed (the 45-day traces are ~60 kB)
MAX_TRACE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, repr=False)
class SpotTrace:
    """Spot availability of one zone: ``available[i]`` is true when tick ``i`` had spot."""

    name: str
    gap_seconds: int
    available: np.ndarray  # bool, read-only

    def __post_init__(self) -> None:
        if self.gap_seconds <= 0:
            raise InputError(f"{self.name}: gap_seconds must be a positive whole number")
        if self.available.dtype != np.bool_ or self.available.ndim != 1:
            raise InputError(f"{self.name}: availability must be a 1-D boolean array")
        if len(self.available) == 0:
            raise InputError(f"{self.name}: the trace has no tick")
        self.available.flags.writeable = False

    def __repr__(self) -> str:
        return f"SpotTrace({self.name!r}, {len(self)} ticks of {self.gap_seconds} s)"

    def __len__(self) -> int:
        return int(self.available.shape[0])

    @property
    def seconds(self) -> int:
        """How long the trace covers."""
        return len(self) * self.gap_seconds

    @classmethod
    def of(cls, name: str, gap_seconds: int, counts: list[int] | tuple[int, ...]) -> SpotTrace:
        """A trace from instance counts, as the file holds them (tests and synthetic traces)."""
        return cls(name, gap_seconds, np.asarray([c > 0 for c in counts], dtype=np.bool_))


def load_trace(path: Path) -> SpotTrace:
    """Read and check one availability trace; an :class:`InputError` names the file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read the trace: {exc.strerror or exc}") from None
    if size > MAX_TRACE_BYTES:
        raise InputError(f"{path}: {size} bytes is larger than a trace may be ({MAX_TRACE_BYTES})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the trace: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not JSON ({exc.msg} at line {exc.lineno}); a trace is "
            '{"metadata": {"gap_seconds": N}, "data": [...]}'
        ) from None
    return parse_trace(doc, str(path), name=path.stem)


def parse_trace(doc: object, source: str, name: str | None = None) -> SpotTrace:
    """Check a decoded trace document; ``source`` names it in errors."""
    if not isinstance(doc, dict):
        raise InputError(
            f'{source}: a trace is a JSON object {{"metadata": {{"gap_seconds": N}}, '
            f'"data": [...]}}, not {type(doc).__name__}'
        )
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or "gap_seconds" not in meta:
        raise InputError(f"{source}: metadata.gap_seconds is missing (the seconds between ticks)")
    gap = meta["gap_seconds"]
    if isinstance(gap, bool) or not isinstance(gap, int | float) or gap != int(gap) or gap <= 0:
        raise InputError(
            f"{source}: metadata.gap_seconds is {gap!r}; it must be a positive whole number"
        )
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise InputError(f"{source}: data must be a non-empty list of instance counts")
    for i, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"{source}: data[{i}] is {value!r}; each tick is a count of obtainable "
                "spot instances, a whole number >= 0"
            )
    available = np.asarray(data, dtype=np.int64) > 0
    return SpotTrace(name or source, int(gap), available)
