"""The offer snapshot: every purchasable configuration, as immutable columns.

An :class:`OfferTable` holds one row per offer (provider, region, zone,
instance type, accelerators, prices) in NumPy arrays, sorted by accelerator,
count and provider so that all offers of one accelerator model form one
contiguous slice. Strings are interned into small tables and referenced by
index. Each row also points at its *equivalence class*: the (provider, region)
pair that policy is evaluated on once, whatever the number of offers in it.

Prices are integer nano-units of the offer's currency (``-1`` = not sold);
``cmp_*`` columns hold the same prices converted to the comparison currency so
that offers in EUR and USD rank on one scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from archipel.core._errors import CatalogError, InputError, UnknownNameError
from archipel.core._facts import Jurisdictions, ProviderFacts
from archipel.core._money import MISSING, convert_nano, cross_rate, nano_to_decimal

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: the columns of an offer table and their dtypes
COLUMNS: Mapping[str, type] = {
    "class_idx": np.int32,  # -> OfferTable.classes
    "zone_idx": np.int32,  # -> OfferTable.strings
    "instance_idx": np.int32,  # -> OfferTable.strings
    "accel_idx": np.int32,  # -> OfferTable.accelerators ("" = none)
    "accel_count": np.float64,
    "gpu_memory_mib": np.int64,  # per accelerator, 0 = unknown
    "vcpus": np.float64,
    "memory_gib": np.float64,
    "price": np.int64,  # on-demand, nano-units of `currency`
    "spot_price": np.int64,
    "cmp_price": np.int64,  # same, in the comparison currency
    "cmp_spot_price": np.int64,
    "currency_idx": np.int32,  # -> OfferTable.strings
    "source_idx": np.int32,  # -> OfferTable.strings
}


@dataclass(frozen=True, slots=True)
class OfferClass:
    """An equivalence class of offers for policy: one provider in one region."""

    provider: str
    region: str
    country: str | None  # ISO 3166-1 alpha-2, None when unknown


@dataclass(frozen=True, slots=True)
class Offer:
    """One row of the table, materialised with exact prices."""

    index: int
    provider: str
    region: str
    zone: str
    country: str | None
    instance_type: str
    accelerator: str
    accelerator_count: float
    gpu_memory_gib: float | None
    vcpus: float | None
    memory_gib: float | None
    price_per_hour: Decimal | None
    spot_price_per_hour: Decimal | None
    currency: str
    source: str

    @property
    def key(self) -> str:
        """``provider/region/instance_type``: how users name an offer."""
        return f"{self.provider}/{self.region or '-'}/{self.instance_type}"


@dataclass(frozen=True, slots=True, repr=False)
class OfferTable:
    """Immutable columnar offers; see the module docstring for the layout."""

    columns: Mapping[str, np.ndarray]
    classes: Sequence[OfferClass]
    accelerators: Sequence[str]
    strings: Sequence[str]
    accel_start: IntArray  # offers of accelerators[i] are rows accel_start[i]:accel_start[i+1]

    def __post_init__(self) -> None:
        n = len(self)
        for name, dtype in COLUMNS.items():
            col = self.columns[name]
            if col.dtype != np.dtype(dtype) or col.shape != (n,):
                raise ValueError(
                    f"column {name}: want {np.dtype(dtype)}[{n}], got {col.dtype}{col.shape}"
                )
            col.flags.writeable = False
        if len(self.accel_start) != len(self.accelerators) + 1:
            raise ValueError("accel_start must have one entry per accelerator plus one")

    def __len__(self) -> int:
        return int(self.columns["price"].shape[0])

    def __repr__(self) -> str:
        return f"OfferTable({len(self)} offers, {len(self.classes)} classes)"

    def col(self, name: str) -> np.ndarray:
        """A read-only column by name."""
        return self.columns[name]

    def accelerator_slice(self, model: str) -> slice:
        """The contiguous rows offering ``model`` (canonical name); empty if none."""
        try:
            i = list(self.accelerators).index(model)
        except ValueError:
            return slice(0, 0)
        return slice(int(self.accel_start[i]), int(self.accel_start[i + 1]))

    def converted(self, rates: Mapping[str, Decimal]) -> OfferTable:
        """The same table with the ``cmp_*`` columns recomputed from the native prices.

        ``rates`` gives, per currency, the units of the new comparison currency
        that one unit buys. Each price is converted exactly and rounded
        half-even to the nano-unit; equal prices convert once.
        """
        currency = self.columns["currency_idx"]
        columns = dict(self.columns)
        for cmp_name, native_name in (("cmp_price", "price"), ("cmp_spot_price", "spot_price")):
            native = self.columns[native_name]
            out = np.full(len(self), MISSING, dtype=np.int64)
            for idx in np.unique(currency):
                code = self.strings[int(idx)]
                if code not in rates:
                    raise CatalogError(f"no exchange rate for {code}, a currency of the catalog")
                rows = (currency == idx) & (native != MISSING)
                if rates[code] == 1:
                    out[rows] = native[rows]
                    continue
                values, inverse = np.unique(native[rows], return_inverse=True)
                done = [convert_nano(int(v), rates[code]) for v in values]
                out[rows] = np.asarray(done, dtype=np.int64)[inverse]
            columns[cmp_name] = out
        return replace(self, columns=columns)

    def offer(self, i: int) -> Offer:
        """Materialise row ``i``."""
        c = self.columns
        cls = self.classes[int(c["class_idx"][i])]
        mem = int(c["gpu_memory_mib"][i])

        def price(col: str) -> Decimal | None:
            v = int(c[col][i])
            return None if v == MISSING else nano_to_decimal(v)

        def opt(col: str) -> float | None:
            v = float(c[col][i])
            return None if np.isnan(v) else v

        return Offer(
            index=i,
            provider=cls.provider,
            region=cls.region,
            zone=self.strings[int(c["zone_idx"][i])],
            country=cls.country,
            instance_type=self.strings[int(c["instance_idx"][i])],
            accelerator=self.accelerators[int(c["accel_idx"][i])],
            accelerator_count=float(c["accel_count"][i]),
            gpu_memory_gib=mem / 1024 if mem else None,
            vcpus=opt("vcpus"),
            memory_gib=opt("memory_gib"),
            price_per_hour=price("price"),
            spot_price_per_hour=price("spot_price"),
            currency=self.strings[int(c["currency_idx"][i])],
            source=self.strings[int(c["source_idx"][i])],
        )


@dataclass(frozen=True, slots=True, repr=False)
class CatalogSnapshot:
    """Everything placement needs to know about the market, frozen at one time."""

    offers: OfferTable
    providers: Mapping[str, ProviderFacts]
    jurisdictions: Jurisdictions
    comparison_currency: str = "USD"
    fx_rates: Mapping[str, Decimal] = field(default_factory=dict)  # 1 unit -> comparison currency
    built_from: Sequence[str] = ()

    def __repr__(self) -> str:
        return f"CatalogSnapshot({len(self.offers)} offers, {len(self.providers)} providers)"

    def in_currency(self, currency: str, where: str = "--currency") -> CatalogSnapshot:
        """The same snapshot compared in ``currency``: rates and ``cmp_*`` columns re-expressed.

        The rate of each currency into ``currency`` is its rate into the current
        comparison currency divided by that of ``currency`` (:func:`cross_rate`).
        A currency without a rate is an :class:`InputError` naming ``where`` and
        listing the known currencies.
        """
        if currency == self.comparison_currency:
            return self
        target = self.fx_rates.get(currency)
        if target is None:
            known = ", ".join(sorted(self.fx_rates))
            raise InputError(
                f"{where}: no exchange rate for currency {currency!r}; the catalog knows "
                f"{known} (ISO 4217 codes; `archipel catalog refresh` fetches the ECB's rates)"
            )
        rates = {code: cross_rate(rate, target) for code, rate in self.fx_rates.items()}
        return replace(
            self,
            offers=self.offers.converted(rates),
            comparison_currency=currency,
            fx_rates=rates,
        )

    def provider(self, provider_id: str) -> ProviderFacts:
        """Facts for a provider; an unregistered one gets all-unknown facts."""
        facts = self.providers.get(provider_id)
        return (
            facts
            if facts is not None
            else ProviderFacts(id=provider_id, name=provider_id, registered=False)
        )

    def check_provider(self, name: str, where: str) -> None:
        """Raise :class:`UnknownNameError` unless ``name`` is a provider id of this catalog."""
        known = {c.provider for c in self.offers.classes} | set(self.providers)
        if name not in known:
            raise UnknownNameError(where, "provider", name, known)

    def check_region(self, provider: str, region: str, where: str) -> None:
        """Raise :class:`UnknownNameError` unless ``provider`` sells in ``region``."""
        known = {c.region for c in self.offers.classes if c.provider == provider}
        if region not in known:
            raise UnknownNameError(where, "region", region, known, at=provider)
