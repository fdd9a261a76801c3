"""Merge private offers into a loaded snapshot, without rebuilding the public part.

The private rows become a small table of their own (the same build as the
shipped sources, at the snapshot's exchange rates); the two tables are then
joined column by column: the string, class and accelerator tables are united
and re-sorted, each index column is remapped, and the rows are sorted again in
the build's order, so a merged snapshot looks exactly like one built with the
private rows among the sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from archipel.catalog._build import build_table, offer_table
from archipel.catalog._private import PrivateOffers
from archipel.core import COLUMNS, CatalogSnapshot, InputError, OfferClass, OfferTable

#: index columns and the table each one points into
_STRING_COLUMNS = ("zone_idx", "instance_idx", "currency_idx", "source_idx")


def _remap(old: Sequence[object], new: Sequence[object]) -> np.ndarray:
    pos = {v: i for i, v in enumerate(new)}
    return np.asarray([pos[v] for v in old], dtype=np.int32)


def _classes(a: OfferTable, b: OfferTable) -> list[OfferClass]:
    """The union of both tables' classes; a class in both keeps the first one's country."""
    by_key = {(c.provider, c.region): c for c in b.classes}
    by_key.update({(c.provider, c.region): c for c in a.classes})
    return [by_key[k] for k in sorted(by_key)]


def _class_keys(table: OfferTable) -> list[tuple[str, str]]:
    return [(c.provider, c.region) for c in table.classes]


def concat_tables(a: OfferTable, b: OfferTable) -> OfferTable:
    """The rows of both tables as one table, in the build's order."""
    classes = _classes(a, b)
    keys = [(c.provider, c.region) for c in classes]
    accelerators = sorted(set(a.accelerators) | set(b.accelerators))
    strings = sorted(set(a.strings) | set(b.strings))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    for t in (a, b):
        maps = {
            "class_idx": _remap(_class_keys(t), keys),
            "accel_idx": _remap(t.accelerators, accelerators),
            **{name: _remap(t.strings, strings) for name in _STRING_COLUMNS},
        }
        for name in COLUMNS:
            col = t.col(name)
            parts[name].append(maps[name][col] if name in maps else col)
    cols: dict[str, np.ndarray] = {
        name: np.concatenate(parts[name]).astype(dtype) for name, dtype in COLUMNS.items()
    }
    order = np.lexsort(
        tuple(
            cols[n]
            for n in (
                "spot_price",
                "price",
                "instance_idx",
                "zone_idx",
                "class_idx",
                "accel_count",
                "accel_idx",
            )
        )
    )
    arrays = {name: np.ascontiguousarray(col[order]) for name, col in cols.items()}
    return offer_table(arrays, classes, accelerators, strings)


def with_private_offers(
    snapshot: CatalogSnapshot, privates: Sequence[PrivateOffers]
) -> CatalogSnapshot:
    """``snapshot`` with the private offers added, and the providers they declare."""
    if not privates:
        return snapshot
    rows = [r for p in privates for r in p.rows]
    keys = [(r.provider, r.region, r.zone, r.instance_type) for r in rows]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        provider, region, _, instance = twice[0]
        raise InputError(f"{provider}/{region}/{instance} is in two private-offers files; keep one")
    providers = dict(snapshot.providers)
    for p in privates:
        for pid, facts in p.providers.items():
            if pid in providers:
                raise InputError(f"{p.source}: provider {pid} is declared in two files; keep one")
            providers[pid] = facts
    private = build_table(rows, {}, snapshot.fx_rates)
    return replace(
        snapshot,
        offers=concat_tables(snapshot.offers, private),
        providers=providers,
        built_from=(*snapshot.built_from, *(p.source for p in privates)),
    )
