"""Verdicts are data: every rejected offer carries a reason code, the plugin
that said no, and a message a person can act on.

Three outcomes are kept apart (see STYLE.md): an offer is *rejected* when the
request, as written, does not fit it (hardware, price, a user constraint: the
user may relax it); *rejected-unresolvable* when nothing the requester can do
will help (the data class forbids the provider or the country); and an
*error* is a bug or an outage, raised as an exception, never a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Stable reason codes, used in JSON output and counters."""

    HARDWARE = "hardware"
    NOT_SOLD = "not_sold"
    UNKNOWN_COUNTRY = "unknown_country"
    COUNTRY = "country"
    CLOUD_ACT = "cloud_act"
    CERTIFICATION = "certification"
    MARKETPLACE = "marketplace"
    UNVETTED = "unvetted"
    PROVIDER_DENIED = "provider_denied"
    USER_COUNTRY = "user_country"
    USER_PROVIDER = "user_provider"
    USER_EXCLUDED = "user_excluded"
    OVER_BUDGET = "over_budget"
    NOT_ENTITLED = "not_entitled"  # a published service whose owner may not serve this tenant
    QUOTA = "quota"  # a tenant's quota on the control plane (runs, replicas, GPUs)
    SITE_BLOCKED = "site_blocked"  # a run's attempt failed there: the run tries elsewhere
    SITE_DOWN = "site_down"  # the site's health check fails now
    SITE_FULL = "site_full"  # every slot of the site is taken now
    SPREAD = "spread"  # a service's spread rule keeps this replica off the site now
    SITE_KIND = "site_kind"  # the site runs other kinds of workload (a training-job service)

    @property
    def unresolvable(self) -> bool:
        """True for policy reasons: relaxing the request cannot lift them."""
        return self in _UNRESOLVABLE

    @property
    def transient(self) -> bool:
        """True for the state of a site now: waiting may lift it."""
        return self in _TRANSIENT

    @property
    def label(self) -> str:
        """Short human label for tables."""
        return _LABELS[self]


_UNRESOLVABLE = frozenset(
    {
        Reason.UNKNOWN_COUNTRY,
        Reason.COUNTRY,
        Reason.CLOUD_ACT,
        Reason.CERTIFICATION,
        Reason.MARKETPLACE,
        Reason.UNVETTED,
        Reason.PROVIDER_DENIED,
    }
)

_TRANSIENT = frozenset({Reason.SITE_DOWN, Reason.SITE_FULL, Reason.SPREAD})

_LABELS = {
    Reason.HARDWARE: "hardware does not match",
    Reason.NOT_SOLD: "not sold in this market",
    Reason.UNKNOWN_COUNTRY: "country of site unknown",
    Reason.COUNTRY: "country not allowed by policy",
    Reason.CLOUD_ACT: "CLOUD Act exposure",
    Reason.CERTIFICATION: "certification missing",
    Reason.MARKETPLACE: "peer-to-peer marketplace",
    Reason.UNVETTED: "provider not vetted",
    Reason.PROVIDER_DENIED: "provider denied by policy",
    Reason.USER_COUNTRY: "outside requested countries",
    Reason.USER_PROVIDER: "outside requested providers",
    Reason.USER_EXCLUDED: "provider excluded by request",
    Reason.OVER_BUDGET: "above max price per hour",
    Reason.NOT_ENTITLED: "owner not entitled to this tenant",
    Reason.QUOTA: "above the tenant's quota",
    Reason.SITE_BLOCKED: "blocked after failures",
    Reason.SITE_DOWN: "site down",
    Reason.SITE_FULL: "site full",
    Reason.SPREAD: "kept off by the spread rule",
    Reason.SITE_KIND: "site runs other kinds of workload",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one offer (or one class of offers) was turned down."""

    reason: Reason
    plugin: str
    message: str

    @property
    def unresolvable(self) -> bool:
        """See :attr:`Reason.unresolvable`."""
        return self.reason.unresolvable
