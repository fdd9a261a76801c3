"""What the placement engine is asked: a request built from a workload or flags."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from archipel.core import (
    AcceleratorRequest,
    CatalogSnapshot,
    InputError,
    Workload,
    resolve_accelerator,
    to_nano,
)


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """A request for one workload, with accelerator names resolved to the catalog's.

    ``spot`` means spot capacity is *tolerated*: each offer is priced at the
    cheaper of its on-demand and spot prices. ``max_price_per_hour`` applies to
    the whole placement (all nodes) in the snapshot's comparison currency.
    ``countries`` may hold ``EU`` (the 27 member states) or ``EEA`` (EU plus
    Iceland, Liechtenstein and Norway).
    """

    accelerators: tuple[AcceleratorRequest, ...]
    data_class: str = "internal"
    nodes: int = 1
    spot: bool = False
    hours: Decimal = Decimal(1)
    countries: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    exclude_providers: tuple[str, ...] = ()
    max_price_per_hour: Decimal | None = None
    name: str = "request"

    def __post_init__(self) -> None:
        if not self.accelerators:
            raise InputError("a placement request needs at least one accelerator (MODEL:COUNT)")
        if self.nodes < 1:
            raise InputError("nodes must be at least 1")
        if self.hours <= 0:
            raise InputError("hours must be positive")
        cap = self.max_price_per_hour
        if cap is not None:
            if not isinstance(cap, Decimal) or cap <= 0:
                raise InputError(f"max_price_per_hour must be a positive Decimal, got {cap!r}")
            try:
                to_nano(cap)
            except ValueError as exc:
                raise InputError(f"max_price_per_hour: {exc}") from None

    @classmethod
    def from_workload(cls, workload: Workload) -> PlacementRequest:
        """The request a workload spec makes."""
        c = workload.constraints
        return cls(
            accelerators=workload.resources.accelerators,
            data_class=workload.data.class_,
            nodes=workload.resources.nodes,
            spot=workload.resources.spot,
            hours=Decimal(str(workload.duration_hours or 1.0)),
            countries=c.countries,
            providers=c.providers,
            exclude_providers=c.exclude_providers,
            max_price_per_hour=c.max_price_per_hour,
            name=workload.name,
        )

    def resolved(self, snapshot: CatalogSnapshot) -> PlacementRequest:
        """This request with accelerator names and provider ids checked against the snapshot.

        Raises :class:`InputError` (or its subclass ``UnknownAcceleratorError``)
        naming what to change.
        """
        known = [a for a in snapshot.offers.accelerators if a]
        accels = tuple(
            AcceleratorRequest(resolve_accelerator(a.model, known), a.count)
            for a in self.accelerators
        )
        for field_name in ("providers", "exclude_providers"):
            for provider in getattr(self, field_name):
                snapshot.check_provider(provider, f"{self.name}: {field_name}")
        return PlacementRequest(
            accelerators=accels,
            data_class=self.data_class,
            nodes=self.nodes,
            spot=self.spot,
            hours=self.hours,
            countries=tuple(c.upper() for c in self.countries),
            providers=self.providers,
            exclude_providers=self.exclude_providers,
            max_price_per_hour=self.max_price_per_hour,
            name=self.name,
        )
