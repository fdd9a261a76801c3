"""Submitting a workload: every check a submission must pass, then the runs it becomes.

:func:`submit` is the use case behind ``POST /v1/runs``; it knows nothing of
HTTP. Its checks, in this order (the first that fails is the answer):

1. publishing a service to another tenant (``serve.publish_to``) needs the
   admin role of the caller's tenant;
2. ``replicas`` applies to inference services only, and the replicas' names
   (``<name>-1`` .. ``<name>-N``) must fit the name column;
3. a workdir named by its hash (``run.workdir_sha256``) must have been uploaded
   by this tenant (naming it restarts its retention time, see ``_workdirs``);
4. the tenant's quotas (:mod:`archipel.controlplane._quotas`): refused for good
   or for now;
5. some declared site must fit the workload under its data class (one engine
   call, on sites as they are declared: a site that is down or full now still
   counts, the run waits for it), and
6. the sites it may use must be able to spread its replicas as its ``spread``
   rule asks.

Then the workload is recorded: one ``pending`` run, or a group of one run per
replica (:meth:`Store.submit_group`). The reconciler takes it from there.

A refusal is an exception whose ``problems`` say what to change, one line each::

    InputError
    └── SubmissionError              a submission the control plane does not take
        ├── NotPermittedError        the caller's role may not submit this
        ├── InvalidSubmissionError   the workload, as submitted, cannot run here
        │   └── NoSiteError          no declared site fits it, or can spread it as asked
        └── OverQuotaError           over the tenant's quota; ``now``: it fits once runs finish
"""

from __future__ import annotations

from archipel.controlplane._placement import SiteChoice, SitePlacer, unoffered
from archipel.controlplane._quotas import QuotaRefusal, Quotas, check_quota
from archipel.controlplane._records import Principal, RunView
from archipel.controlplane._spread import Where, spread_problems
from archipel.controlplane._store import Store
from archipel.controlplane._workdirs import Workdirs
from archipel.core import InputError, Reason, Workload, WorkloadKind

#: a run's name column holds this many characters
NAME_LENGTH = 200


class SubmissionError(InputError):
    """A submission the control plane does not take; ``problems`` say what to change."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class NotPermittedError(SubmissionError):
    """The caller's role may not submit this workload (another role of its tenant may)."""


class InvalidSubmissionError(SubmissionError):
    """The workload, as submitted, cannot run on this control plane."""


class NoSiteError(InvalidSubmissionError):
    """No declared site will ever fit the workload, or spread its replicas as asked."""


class OverQuotaError(SubmissionError):
    """Over the tenant's quota: for good, or for now (``now``: once some runs finish)."""

    def __init__(self, refusal: QuotaRefusal) -> None:
        self.refusal = refusal
        super().__init__([refusal.rejection.message])

    @property
    def now(self) -> bool:
        return self.refusal.now


def submit(
    store: Store,
    placer: SitePlacer,
    workload: Workload,
    who: Principal,
    *,
    quotas: Quotas | None = None,
    workdirs: Workdirs | None = None,
) -> list[RunView]:
    """Check ``workload`` as ``who`` submits it and record it: the runs it became.

    ``placer`` knows the declared sites; ``workdirs`` the uploaded workdirs
    (without it, a workload that names one is refused). Raises a
    :class:`SubmissionError` (see the module docstring), and records nothing then.
    """
    _check_publishing(workload, who)
    _check_replicas(workload)
    _check_workdir(workload, who.tenant, workdirs)
    refused = check_quota(quotas or Quotas(), store, who.tenant, workload)
    if refused is not None:
        raise OverQuotaError(refused)
    _check_sites(placer, workload)
    if workload.replicas > 1:
        return store.submit_group(who.tenant, workload)
    return [store.submit(who.tenant, workload)]


def _check_publishing(workload: Workload, who: Principal) -> None:
    others = [] if workload.serve is None else workload.serve.publish_to
    others = [t for t in others if t != who.tenant]
    if others and who.role != "admin":
        raise NotPermittedError(
            [
                f"serve.publish_to: publishing a service to another tenant "
                f"({', '.join(others)}) needs the admin role of tenant {who.tenant}; "
                "drop publish_to, or submit with an admin token"
            ]
        )


def _check_replicas(workload: Workload) -> None:
    if workload.replicas > 1 and workload.kind is not WorkloadKind.INFERENCE:
        raise InvalidSubmissionError(
            [
                f"replicas: replicas applies to inference services, and this is a "
                f"{workload.kind} workload asking for {workload.replicas}; submit it with "
                "replicas: 1 (or once per copy, each with its own name)"
            ]
        )
    if workload.replicas > 1 and len(f"{workload.name}-{workload.replicas}") > NAME_LENGTH:
        raise InvalidSubmissionError(
            [f"name: too long to name the replicas <name>-1 .. <name>-N ({NAME_LENGTH} at most)"]
        )


def _check_workdir(workload: Workload, tenant: str, workdirs: Workdirs | None) -> None:
    if workload.run is None:
        raise InvalidSubmissionError(
            [
                "run: required to run a workload: give run.command "
                "(what to execute, e.g. [python, train.py])"
            ]
        )
    sha256 = workload.run.workdir_sha256
    if sha256 is not None and (workdirs is None or not workdirs.claim(tenant, sha256)):
        raise InvalidSubmissionError(
            [
                "run.workdir_sha256: no workdir with this SHA-256 was uploaded by this "
                "tenant; upload it first (PUT /v1/workdirs/{sha256}), as `archipel run` does"
            ]
        )


def _check_sites(placer: SitePlacer, workload: Workload) -> None:
    """Some declared site fits the workload, and the fitting sites can spread its replicas."""
    missing = unoffered(workload, list(placer.sites.values()))
    if missing is not None:  # the hardware is the problem, not the data class
        raise NoSiteError([missing])
    choice = placer.place(workload)
    if choice.site is None:  # no declared site will ever fit: say why now, not later
        raise NoSiteError([headline(workload, choice), *_why_not(choice)])
    if workload.replicas == 1 or workload.spread is None:
        return
    fitting = placer.fitting(workload, list(placer.sites))
    where = [Where(placer.sites[n].provider, placer.sites[n].country) for n in fitting]
    problems = spread_problems(workload.spread, workload.replicas, where)
    if problems:
        raise NoSiteError(problems)


def headline(workload: Workload, choice: SiteChoice) -> str:
    """The first line of a refusal when no site fits: what is missing, named for what it is.

    Every site lacking the hardware: the hardware; every site ruled out by the
    policy: the data class; the sites with the hardware all ruled out by the
    policy: both; anything else (a restriction of the request itself): neither.
    """
    asked = " or ".join(str(a) for a in workload.resources.accelerators)
    data = f"data class `{workload.data.class_}`"
    reasons = {r.reason for r in choice.rejections}
    if choice.invalid is not None or not reasons:
        return f"no site can run this workload: {choice.explain()}"
    if reasons == {Reason.HARDWARE}:
        return f"no site has the hardware this workload asks for ({asked})"
    if all(r.unresolvable for r in reasons):
        return f"no site may hold {data}: the policy rules out every site"
    if all(r.unresolvable or r is Reason.HARDWARE for r in reasons):
        return f"no site with the hardware this workload asks for ({asked}) may hold {data}"
    return "no site can run this workload as asked"


def _why_not(choice: SiteChoice) -> list[str]:
    """Why no site fits: the request's own problem, or each kind of rejection, with an example."""
    if choice.plan is None:
        reasons = [choice.explain()]
    else:
        reasons = [f"{r.reason.value}: {r.example}" for r in choice.plan.rejections]
    return [r for r in reasons if r]
