"""The submission use case, without HTTP: what it accepts, records, and refuses with which error.

The three sites of ``conftest.SITES``: paris (scaleway, FR), frankfurt (ionos, DE)
and virginia (aws, US), each offering ``cpu:1``. Personal data may go to the two
EU sites only. Runs against SQLite and PostgreSQL alike (the ``store`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archipel.controlplane import Principal, SitePlacer, SiteSpec, Store
from archipel.controlplane._quotas import Quotas
from archipel.controlplane._submit import (
    InvalidSubmissionError,
    NoSiteError,
    NotPermittedError,
    OverQuotaError,
    SubmissionError,
    submit,
)
from archipel.controlplane._workdirs import Workdirs
from archipel.core import CatalogSnapshot, InputError, RunState, parse_workload
from archipel.policy import Policy

from .conftest import SITES

SUBMITTER = Principal("acme", "submitter", "t-1")
ADMIN = Principal("acme", "admin", "t-2")
UPLOADED = "ab" * 32  # the SHA-256 of the workdir acme uploaded
QUOTAS = Quotas(active_runs=3, replicas=4, gpus=16)

TRAIN: dict[str, Any] = {
    "name": "train",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "train.py"]},
}
SERVICE: dict[str, Any] = {
    **TRAIN,
    "name": "llama",
    "kind": "inference",
    "serve": {"model": "llama-3.1-8b"},
}


def spec(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


@pytest.fixture
def placer(snapshot: CatalogSnapshot, policy: Policy) -> SitePlacer:
    return SitePlacer(SITES, snapshot, policy)


@pytest.fixture
def workdirs(tmp_path: Path) -> Workdirs:
    dirs = Workdirs(tmp_path / "workdirs")
    dirs.save("acme", UPLOADED, b"an archive")
    return dirs


@pytest.fixture
def submitting(store: Store, placer: SitePlacer, workdirs: Workdirs) -> Callable[..., list[Any]]:
    def call(document: dict[str, Any], who: Principal = SUBMITTER) -> list[Any]:
        return submit(
            store, placer, parse_workload(document), who, quotas=QUOTAS, workdirs=workdirs
        )

    return call


@pytest.mark.parametrize(
    ("document", "who", "names", "grouped"),
    [
        pytest.param(TRAIN, SUBMITTER, ["train"], False, id="a training job: one run"),
        pytest.param(SERVICE, SUBMITTER, ["llama"], False, id="a service of one replica"),
        pytest.param(
            spec(SERVICE, replicas=3),
            SUBMITTER,
            ["llama-1", "llama-2", "llama-3"],
            True,
            id="a service of three replicas: a group of three runs",
        ),
        pytest.param(
            spec(SERVICE, replicas=2, spread={"min_providers": 2}),
            SUBMITTER,
            ["llama-1", "llama-2"],
            True,
            id="a spread the EU sites can keep",
        ),
        pytest.param(
            spec(TRAIN, run={"command": ["python", "t.py"], "workdir_sha256": UPLOADED}),
            SUBMITTER,
            ["train"],
            False,
            id="a workdir the tenant uploaded",
        ),
        pytest.param(
            spec(SERVICE, serve={"model": "m", "publish_to": ["globex"]}),
            ADMIN,
            ["llama"],
            False,
            id="an admin publishing to another tenant",
        ),
        pytest.param(
            spec(SERVICE, serve={"model": "m", "publish_to": ["acme"]}),
            SUBMITTER,
            ["llama"],
            False,
            id="publishing to its own tenant needs no admin",
        ),
    ],
)
def test_a_valid_submission_is_recorded_as_pending_runs_of_the_tenant(
    submitting: Callable[..., list[Any]],
    store: Store,
    document: dict[str, Any],
    who: Principal,
    names: list[str],
    grouped: bool,
) -> None:
    runs = submitting(document, who)
    assert [r.name for r in runs] == names
    assert [r.name for r in store.runs()] == names
    assert {r.state for r in store.runs()} == {RunState.PENDING}
    assert {r.tenant for r in runs} == {who.tenant}
    groups = {r.group_id for r in runs}
    assert (len(groups) == 1 and None not in groups) if grouped else groups == {None}


@pytest.mark.parametrize(
    ("document", "error", "says"),
    [
        pytest.param(
            spec(SERVICE, serve={"model": "m", "publish_to": ["globex", "acme"]}),
            NotPermittedError,
            "serve.publish_to: publishing a service to another tenant (globex) needs the "
            "admin role of tenant acme",
            id="a submitter publishing to another tenant",
        ),
        pytest.param(
            spec(TRAIN, replicas=3),
            InvalidSubmissionError,
            "replicas: replicas applies to inference services, and this is a training "
            "workload asking for 3",
            id="replicas of a training job",
        ),
        pytest.param(
            spec(SERVICE, name="n" * 199, replicas=2),
            InvalidSubmissionError,
            "name: too long to name the replicas <name>-1 .. <name>-N (200 at most)",
            id="no room to name the replicas",
        ),
        pytest.param(
            spec(TRAIN, run={"command": ["python", "t.py"], "workdir_sha256": "cd" * 32}),
            InvalidSubmissionError,
            "run.workdir_sha256: no workdir with this SHA-256 was uploaded by this tenant",
            id="a workdir never uploaded",
        ),
        pytest.param(
            {k: v for k, v in TRAIN.items() if k != "run"},
            InvalidSubmissionError,
            "run: required to run a workload: give run.command",
            id="nothing to run",
        ),
        pytest.param(
            spec(SERVICE, replicas=5),
            OverQuotaError,
            "replicas: 5 asked, and this server takes at most 4 per submission",
            id="quota: more replicas than a submission may have",
        ),
        pytest.param(
            spec(TRAIN, resources={"accelerators": "H100:8", "nodes": 3}),
            OverQuotaError,
            "resources: 24 GPUs asked, and a tenant may hold at most 16",
            id="quota: more GPUs than a tenant may ever hold",
        ),
    ],
)
def test_a_refused_submission_raises_its_error_and_records_nothing(
    submitting: Callable[..., list[Any]],
    store: Store,
    document: dict[str, Any],
    error: type[SubmissionError],
    says: str,
) -> None:
    with pytest.raises(error) as refused:
        submitting(document)
    assert any(p.startswith(says) for p in refused.value.problems), refused.value.problems
    assert isinstance(refused.value, InputError)  # the user can fix it
    assert store.runs() == []


@pytest.mark.parametrize(
    ("held_by", "finished", "refused"),
    [
        pytest.param("acme", False, True, id="the tenant's own unfinished runs: refused for now"),
        pytest.param("acme", True, False, id="its finished runs do not count"),
        pytest.param("globex", False, False, id="another tenant's runs do not count"),
    ],
)
def test_the_quota_of_unfinished_runs_refuses_for_now(
    submitting: Callable[..., list[Any]],
    store: Store,
    held_by: str,
    finished: bool,
    refused: bool,
) -> None:
    for _ in range(QUOTAS.active_runs):
        run = store.submit(held_by, parse_workload(TRAIN))
        if finished:
            store.transition(run, RunState.CANCELLED, "set-up")
    if not refused:
        assert [r.name for r in submitting(TRAIN)] == ["train"]
        return
    with pytest.raises(OverQuotaError) as over:
        submitting(TRAIN)
    assert over.value.now  # it fits once some of them finish
    assert over.value.problems == [
        "tenant acme has 3 unfinished runs, and may have at most 3 (the server's "
        "--max-active-runs): this submission of 1 fits once some of them finish or are "
        "cancelled"
    ]


def test_a_quota_that_can_never_fit_is_not_refused_for_now(
    submitting: Callable[..., list[Any]],
) -> None:
    with pytest.raises(OverQuotaError) as over:
        submitting(spec(SERVICE, replicas=5))
    assert not over.value.now


def test_a_workdir_uploaded_by_another_tenant_cannot_be_named(
    store: Store, placer: SitePlacer, workdirs: Workdirs
) -> None:
    document = spec(TRAIN, run={"command": ["python", "t.py"], "workdir_sha256": UPLOADED})
    globex = Principal("globex", "submitter", "t-3")
    with pytest.raises(InvalidSubmissionError):
        submit(store, placer, parse_workload(document), globex, workdirs=workdirs)
    with pytest.raises(InvalidSubmissionError):  # without a workdir store, none can be named
        submit(store, placer, parse_workload(document), SUBMITTER)
    assert store.runs() == []


NOT_UPLOADED = {"command": ["python", "t.py"], "workdir_sha256": "cd" * 32}


@pytest.mark.parametrize(
    ("document", "error", "says"),
    [
        pytest.param(
            spec(SERVICE, name="n" * 199, replicas=2, serve={"model": "m", "publish_to": ["x"]}),
            NotPermittedError,
            "serve.publish_to:",
            id="the role before the replicas",
        ),
        pytest.param(
            spec(TRAIN, replicas=3, run=NOT_UPLOADED),
            InvalidSubmissionError,
            "replicas:",
            id="the replicas before the workdir",
        ),
        pytest.param(
            spec(SERVICE, replicas=5, run=NOT_UPLOADED),
            InvalidSubmissionError,
            "run.workdir_sha256:",
            id="the workdir before the quotas",
        ),
        pytest.param(
            spec(TRAIN, resources={"accelerators": "H100:8", "nodes": 3}),
            OverQuotaError,
            "resources: 24 GPUs asked",
            id="the quotas before the sites",
        ),
    ],
)
def test_the_first_failing_check_is_the_answer(
    submitting: Callable[..., list[Any]],
    document: dict[str, Any],
    error: type[SubmissionError],
    says: str,
) -> None:
    """Every submission here fails two checks; the one named is the earlier of the two."""
    with pytest.raises(error) as refused:
        submitting(document)
    assert type(refused.value) is error
    assert refused.value.problems[0].startswith(says)


#: a GPU site in the US beside the CPU sites: personal data may not go there
WITH_GPU = [
    *SITES,
    SiteSpec(
        name="ohio",
        backend="local",
        provider="aws",
        region="us-east-2",
        country="US",
        accelerators="H100:8",
        slots=1,
        price_per_hour=30,
    ),
]


@pytest.mark.parametrize(
    ("sites", "document", "problems"),
    [
        pytest.param(
            SITES,
            spec(TRAIN, resources={"accelerators": "H100:1"}),
            ["no site offers H100; the sites offer: cpu:1 (paris, frankfurt, virginia)"],
            id="an accelerator no site has: the hardware, not the data class",
        ),
        pytest.param(
            SITES,
            spec(TRAIN, resources={"accelerators": "cpu:64"}),
            [
                "no site has the hardware this workload asks for (cpu:64)",
                "hardware: aws/us-east-1/virginia has 1x cpu; the request needs cpu:64",
            ],
            id="more of an offered accelerator than any site has",
        ),
        pytest.param(
            SITES,
            spec(TRAIN, resources={"accelerators": "cpu:64"}, data={"class": "sovereign"}),
            [
                "no site has the hardware this workload asks for (cpu:64)",
                "hardware: aws/us-east-1/virginia has 1x cpu; the request needs cpu:64",
            ],
            id="missing hardware is named first, whatever the data class",
        ),
        pytest.param(
            SITES,
            spec(TRAIN, data={"class": "sovereign"}),
            [
                "no site may hold data class `sovereign`: the policy rules out every site",
                "certification: ionos/de/fra rejected: SecNumCloud status of ionos is none; "
                "policy `sovereign` requires qualified",
                "country: aws/us-east-1 rejected: site in US; policy `sovereign` requires a "
                "site in the EU/EEA",
            ],
            id="a data class the sites' providers and countries do not allow",
        ),
        pytest.param(
            WITH_GPU,
            spec(TRAIN, resources={"accelerators": "H100:8"}),
            [
                "no site with the hardware this workload asks for (H100:8) may hold data "
                "class `personal`",
                "hardware: aws/us-east-1/virginia has 1x cpu; the request needs H100:8",
                "country: aws/us-east-2 rejected: site in US; policy `personal` requires a "
                "site in the EU/EEA or a country with an EU adequacy decision",
            ],
            id="the only site with the hardware is ruled out by the data class",
        ),
        pytest.param(
            SITES,
            spec(SERVICE, replicas=3, spread={"min_countries": 3}),
            [
                "spread.min_countries: 3 countries asked, but the sites this workload may "
                "use are in 2 (DE, FR)"
            ],
            id="a spread no set of allowed sites can meet",
        ),
    ],
)
def test_a_submission_no_site_can_run_names_what_is_missing(
    store: Store,
    snapshot: CatalogSnapshot,
    policy: Policy,
    sites: list[SiteSpec],
    document: dict[str, Any],
    problems: list[str],
) -> None:
    """The first line of the 422 says what is missing: hardware, the data class, or both."""
    placer = SitePlacer(sites, snapshot, policy)
    with pytest.raises(NoSiteError) as refused:
        submit(store, placer, parse_workload(document), SUBMITTER, quotas=QUOTAS)
    assert refused.value.problems == problems
