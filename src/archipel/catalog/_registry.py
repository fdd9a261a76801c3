"""Fact tables shipped with the catalog: providers, countries of regions, legal groups.

Each table is a YAML file under ``_data/`` with its sources; this module turns
them into the core types. Nothing here guesses: a missing fact stays ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from archipel.core import CatalogError, CloudActExposure, Jurisdictions, ProviderFacts

DATA_DIR = Path(__file__).with_name("_data")

_CERTIFICATIONS = ("iso27001", "bsi_c5", "hds")


def _load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read fact table {path}: {exc}") from exc


def _tri(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def provider_facts(entry: Mapping[str, Any]) -> ProviderFacts:
    """One registry entry (the ``providers.yaml`` schema) as :class:`ProviderFacts`."""
    certs = entry.get("certifications") or {}
    exposure = (entry.get("cloud_act") or {}).get("exposure")
    scn = certs.get("secnumcloud")
    kind = entry.get("kind")
    marketplace = entry.get("marketplace")
    if not isinstance(marketplace, bool):
        marketplace = None if kind is None else kind == "marketplace"
    try:
        cloud_act = CloudActExposure(exposure) if exposure is not None else None
    except ValueError:
        raise CatalogError(
            f"provider {entry.get('id')}: unknown cloud_act.exposure {exposure!r}"
        ) from None
    return ProviderFacts(
        id=str(entry["id"]),
        name=str(entry.get("name") or entry["id"]),
        kind=kind,
        registered=True,
        marketplace=marketplace,
        hq_country=entry.get("hq_country"),
        parent_jurisdiction=entry.get("parent_jurisdiction"),
        cloud_act=cloud_act,
        cloud_act_reason=(entry.get("cloud_act") or {}).get("reason"),
        secnumcloud=(scn or {}).get("status") if isinstance(scn, dict) else None,
        certifications={name: _tri(certs.get(name)) for name in _CERTIFICATIONS},
        sources=tuple(str(s) for s in entry.get("sources") or ()),
    )


def load_providers(data_dir: Path = DATA_DIR) -> dict[str, ProviderFacts]:
    """The shared registry plus the catalog's extra entries; a duplicate id is an error."""
    facts: dict[str, ProviderFacts] = {}
    for name in ("providers.yaml", "providers_extra.yaml"):
        doc = _load_yaml(data_dir / name)
        for entry in doc.get("providers") or []:
            pf = provider_facts(entry)
            if pf.id in facts:
                raise CatalogError(f"{name}: provider {pf.id!r} is already registered")
            facts[pf.id] = pf
    return facts


def load_jurisdictions(data_dir: Path = DATA_DIR) -> Jurisdictions:
    """EU, EEA and adequacy country groups from ``jurisdictions.yaml``."""
    doc = _load_yaml(data_dir / "jurisdictions.yaml")
    full: set[str] = set()
    partial: set[str] = set()
    notes: dict[str, str] = {}
    for decision in (doc.get("adequacy") or {}).get("decisions") or []:
        target = full if decision.get("scope") in ("full", "commercial") else partial
        target.add(str(decision["country"]).upper())
        if decision.get("note"):
            notes[str(decision["country"]).upper()] = str(decision["note"])
    return Jurisdictions(
        eu=frozenset(c.upper() for c in doc["eu_member_states"]["countries"]),
        eea_non_eu=frozenset(c.upper() for c in doc["eea_non_eu"]["countries"]),
        adequacy_full=frozenset(full),
        adequacy_partial=frozenset(partial),
        notes=notes,
    )


def load_regions(data_dir: Path = DATA_DIR) -> dict[tuple[str, str], str | None]:
    """``(provider, region) -> ISO country`` (``None`` where the table says unknown)."""
    doc = _load_yaml(data_dir / "regions.yaml")
    table: dict[tuple[str, str], str | None] = {}
    for provider, block in (doc.get("providers") or {}).items():
        for region, info in (block.get("regions") or {}).items():
            country = (info or {}).get("country")
            table[(str(provider), str(region))] = str(country).upper() if country else None
    return table


def load_fx(data_dir: Path = DATA_DIR) -> tuple[str, dict[str, Decimal]]:
    """The comparison currency and each currency's rate into it."""
    doc = _load_yaml(data_dir / "fx.yaml")
    rates: dict[str, Decimal] = {}
    for code, info in (doc.get("rates") or {}).items():
        try:
            rates[str(code)] = Decimal(str(info["rate"]))
        except (InvalidOperation, KeyError, TypeError):
            raise CatalogError(f"fx.yaml: rate for {code} is not a decimal") from None
    return str(doc["comparison_currency"]), rates
