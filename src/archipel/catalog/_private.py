"""Private offers: a buyer's own negotiated prices, merged into the public catalog.

A buyer with a contract (a reserved cluster, a committed-spend discount, a
provider with no public price list) writes its offers in a YAML file::

    offers:
      - provider: coreweave          # a registry id, or one declared below
        region: US-EAST-04
        country: US                  # needed when the registry does not know the region
        instance: gd-8xh100ib-i128
        accelerator: H100
        count: 8                     # accelerators per instance
        gpu_memory_gib: 80           # per accelerator
        price: 49.24                 # per instance-hour, on demand
        currency: USD
        capacity: 256                # optional: accelerators the contract reserves
        commitment: 3-year reserved  # optional: a note shown as the offer's source
    providers:                       # optional: providers the registry lacks
      - id: acme-gpu
        name: Acme GPU
        kind: neocloud
        hq_country: DE
        cloud_act: {exposure: "no", reason: German GmbH, no US parent}

Private offers go through the same policy as public ones. A registered
provider's facts come from the registry and cannot be restated in the file; a
provider the registry lacks must declare its facts (at least ``kind``,
``hq_country`` and ``cloud_act.exposure``) or the file is refused. Unknown
certifications stay unknown, which no rule accepts. Every problem is an
:class:`~archipel.core.InputError` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from archipel.catalog._registry import provider_facts
from archipel.catalog._sources import OfferRow, whole_gib
from archipel.core import (
    MISSING,
    CatalogSnapshot,
    InputError,
    PositiveAmount,
    ProviderFacts,
    UnknownAcceleratorError,
    canonical_accelerator,
    resolve_accelerator,
    to_nano,
)

_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class PrivateOffer(BaseModel):
    """One negotiated offer: a whole instance, priced per hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")]
    region: Annotated[str, Field(min_length=1)]
    zone: str = ""
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    instance: Annotated[str, Field(min_length=1)]
    accelerator: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(ge=1, le=1024)]
    gpu_memory_gib: _Positive
    vcpus: _Positive | None = None
    memory_gib: _Positive | None = None
    price: PositiveAmount
    # zero is no price, as in the public sources: a free spot offer would rank first
    spot_price: PositiveAmount | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    capacity: Annotated[int, Field(ge=1)] | None = None
    commitment: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class _DeclaredProvider(BaseModel):
    """The facts a provider outside the registry must state (the registry's schema)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: Annotated[str, Field(min_length=1)]
    kind: Annotated[str, Field(min_length=1)]
    hq_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    cloud_act: dict[str, Any]

    @model_validator(mode="after")
    def _exposure(self) -> _DeclaredProvider:
        if "exposure" not in self.cloud_act:
            raise ValueError("cloud_act.exposure is required: yes, via-parent, unclear or no")
        return self


@dataclass(frozen=True, slots=True)
class PrivateOffers:
    """A parsed private-offers file: its rows, its declared providers, its capacities."""

    source: str
    rows: tuple[OfferRow, ...]
    providers: Mapping[str, ProviderFacts]
    capacity: tuple[tuple[str, str, str, int], ...]  # provider, region, accelerator, GPUs


class _Lined(dict[Any, Any]):
    """A YAML mapping that remembers the line it starts on."""

    line = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Lined:
    out = _Lined(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _where(source: str, item: Any) -> str:
    line = getattr(item, "line", 0)
    return f"{source}:{line}" if line else source


def _field_problem(error: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(entry)"
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown field; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{field}: required field is missing"
    return f"{field}: {str(error['msg']).removeprefix('Value error, ')}"


def _problem(exc: ValidationError) -> str:
    """Every field's problem on one line, a misspelt field first (it explains a missing one)."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return "; ".join(_field_problem(e) for e in errors)


def _load(text: str, source: str) -> Mapping[str, Any]:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # a SafeLoader that keeps line numbers
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to be a private-offers file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise InputError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("offers"), list):
        raise InputError(f"{source}: a private-offers file is a mapping with an `offers:` list")
    unknown = sorted(set(doc) - {"offers", "providers"})
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]}; the keys are offers and providers")
    if not doc["offers"]:
        raise InputError(f"{source}: `offers:` is empty; list at least one offer")
    return doc


def _declared(
    doc: Mapping[str, Any], source: str, registry: Mapping[str, ProviderFacts]
) -> dict[str, ProviderFacts]:
    out: dict[str, ProviderFacts] = {}
    for item in doc.get("providers") or []:
        where = _where(source, item)
        try:
            entry = _DeclaredProvider.model_validate(item)
        except ValidationError as exc:
            raise InputError(f"{where}: provider {_problem(exc)}") from None
        if entry.id in registry:
            raise InputError(
                f"{where}: provider {entry.id} is in the registry, whose facts apply; "
                "remove it from `providers:`"
            )
        if entry.id in out:
            raise InputError(f"{where}: provider {entry.id} is declared twice")
        facts = provider_facts({**entry.model_dump(), "sources": [f"declared in {source}"]})
        out[entry.id] = facts
    return out


def _country(
    offer: PrivateOffer,
    where: str,
    regions: Mapping[tuple[str, str], str | None],
) -> str:
    key = (offer.provider, offer.region)
    if key in regions and regions[key] is None:
        raise InputError(
            f"{where}: {offer.provider} {offer.region} is a placeholder region of unknown "
            "country in the catalog; name the region where the capacity really is"
        )
    known = regions.get(key)
    if known and offer.country and offer.country != known:
        raise InputError(
            f"{where}: {offer.provider} {offer.region} is in {known} per the region table, "
            f"not {offer.country}; remove `country` or fix the region"
        )
    country = offer.country or known
    if country is None:
        raise InputError(
            f"{where}: the country of {offer.provider} {offer.region} is unknown; "
            "add `country: CC` (ISO 3166-1 alpha-2) to the offer"
        )
    return country


def _accelerator(name: str, where: str, known: Sequence[str]) -> str:
    try:
        return resolve_accelerator(canonical_accelerator(name), known)
    except UnknownAcceleratorError as exc:
        raise InputError(f"{where}: {exc}") from None


def _row(offer: PrivateOffer, source: str, country: str, accelerator: str) -> OfferRow:
    note = f": {offer.commitment}" if offer.commitment else ""
    return OfferRow(
        provider=offer.provider,
        region=offer.region,
        zone=offer.zone,
        instance_type=offer.instance,
        accelerator=accelerator,
        accelerator_count=float(offer.count),
        gpu_memory_mib=whole_gib(offer.gpu_memory_gib * 1024),
        vcpus=offer.vcpus,
        memory_gib=offer.memory_gib,
        price=to_nano(offer.price),
        spot_price=MISSING if offer.spot_price is None else to_nano(offer.spot_price),
        currency=offer.currency,
        source=f"private offer ({source}){note}",
        country=country,
    )


def parse_private_offers(
    text: str,
    source: str,
    snapshot: CatalogSnapshot,
    regions: Mapping[tuple[str, str], str | None],
) -> PrivateOffers:
    """Validate a private-offers document against the catalog it will be merged into.

    ``regions`` maps (provider, region) to its country (the shipped region
    table); the snapshot's own classes fill in the rest.
    """
    doc = _load(text, source)
    declared = _declared(doc, source, snapshot.providers)
    table = {(c.provider, c.region): c.country for c in snapshot.offers.classes}
    table.update({k: v for k, v in regions.items() if v})
    known = [a for a in snapshot.offers.accelerators if a]
    rows: list[OfferRow] = []
    capacity: list[tuple[str, str, str, int]] = []
    for item in doc["offers"]:
        where = _where(source, item)
        try:
            offer = PrivateOffer.model_validate(item)
        except ValidationError as exc:
            raise InputError(f"{where}: offer {_problem(exc)}") from None
        _check_provider(offer, where, snapshot, declared)
        if offer.currency not in snapshot.fx_rates:
            rates = ", ".join(sorted(snapshot.fx_rates))
            raise InputError(f"{where}: no exchange rate for {offer.currency}; use one of {rates}")
        accelerator = _accelerator(offer.accelerator, where, known)
        rows.append(_row(offer, source, _country(offer, where, table), accelerator))
        if offer.capacity is not None:
            capacity.append((offer.provider, offer.region, accelerator, offer.capacity))
    _check_unique(rows, source)
    return PrivateOffers(source, tuple(rows), declared, tuple(capacity))


def _check_provider(
    offer: PrivateOffer,
    where: str,
    snapshot: CatalogSnapshot,
    declared: Mapping[str, ProviderFacts],
) -> None:
    if offer.provider in snapshot.providers or offer.provider in declared:
        return
    raise InputError(
        f"{where}: provider {offer.provider} is not in the registry; declare its facts "
        "(id, name, kind, hq_country, cloud_act.exposure) under `providers:` so the "
        "policy can judge it"
    )


def _check_unique(rows: Sequence[OfferRow], source: str) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for r in rows:
        key = (r.provider, r.region, r.zone, r.instance_type)
        if key in seen:
            raise InputError(
                f"{source}: {r.provider}/{r.region}/{r.instance_type} is listed twice; "
                "keep one price per instance type and region"
            )
        seen.add(key)
