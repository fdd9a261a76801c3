"""Retention of uploaded workdir archives: what a sweep keeps and what it removes.

Times are those of a controllable clock: ``NOW`` is read once, and every archive's
modification time and every run's end are set relative to it. Runs against SQLite
and PostgreSQL alike (the ``store`` fixture).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from archipel.controlplane import Store
from archipel.controlplane._models import RunRow
from archipel.controlplane._records import now
from archipel.controlplane._workdirs import Removed, Retention, Workdirs
from archipel.core import RunState, parse_workload

from .conftest import MakeReconciler

RETENTION = Retention(
    grace=timedelta(hours=6), ttl=timedelta(hours=24), every=timedelta(minutes=10)
)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SHA = "ab" * 32
BODY = b"an archive of some bytes"


def workload(sha256: str = SHA) -> Any:
    return parse_workload(
        {
            "name": "train",
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "personal"},
            "run": {"command": ["python", "train.py"], "workdir_sha256": sha256},
        }
    )


def age(path: Path, at: datetime, by: timedelta) -> None:
    """Set the file's modification time to ``at - by`` (``at`` naive UTC)."""
    stamp = (at - by).replace(tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))


def date(store: Store, run_id: str, at: datetime) -> None:
    """Date a run's last change ``at``."""
    with store.session() as s, s.begin():
        s.execute(update(RunRow).where(RunRow.id == run_id).values(updated_at=at))


def end(store: Store, run_id: str, state: RunState, at: datetime) -> None:
    """Move a run to a final ``state`` and date its end ``at``."""
    run = store.get(run_id)
    assert run is not None
    store.transition(run, state, "set-up")
    date(store, run_id, at)


@dataclass(frozen=True)
class Named:
    """A run of ``tenant`` naming the archive: ended that long ago, or (``ended`` None)
    unfinished and unchanged for 20 days (waiting, or running long)."""

    tenant: str = "acme"
    ended: timedelta | None = None


@pytest.mark.parametrize(
    ("uploaded", "runs", "kept"),
    [
        pytest.param(30 * DAY, [Named()], True, id="named by an unfinished run: kept"),
        pytest.param(
            30 * DAY, [Named(ended=HOUR)], True, id="last run ended less than grace ago: kept"
        ),
        pytest.param(
            30 * DAY, [Named(ended=7 * HOUR)], False, id="last run ended more than grace ago"
        ),
        pytest.param(
            30 * DAY,
            [Named(ended=20 * DAY), Named()],
            True,
            id="one run ended long ago, another not finished: kept",
        ),
        pytest.param(
            30 * DAY,
            [Named(ended=20 * DAY), Named(ended=2 * HOUR)],
            True,
            id="the last of several runs ended within grace: kept",
        ),
        pytest.param(25 * HOUR, [], False, id="never named and older than the TTL"),
        pytest.param(2 * HOUR, [], True, id="uploaded, not submitted yet, within the TTL: kept"),
        pytest.param(
            2 * HOUR,
            [Named(ended=20 * DAY)],
            True,
            id="named again recently (its time is new), its runs ended long ago: kept",
        ),
        pytest.param(
            30 * DAY,
            [Named(tenant="globex")],
            False,
            id="only another tenant's run names the same hash: not this tenant's archive",
        ),
    ],
)
def test_a_sweep_keeps_what_a_run_may_still_need(
    store: Store, tmp_path: Path, uploaded: timedelta, runs: list[Named], kept: bool
) -> None:
    at = now()
    workdirs = Workdirs(tmp_path / "workdirs")
    workdirs.save("acme", SHA, BODY)
    age(workdirs.path("acme", SHA), at, uploaded)
    for named in runs:
        run = store.submit(named.tenant, workload())
        if named.ended is None:
            date(store, run.id, at - 20 * DAY)
        else:
            end(store, run.id, RunState.CANCELLED, at - named.ended)

    removed = workdirs.sweep(at, RETENTION, store.workdirs_named)

    assert workdirs.has("acme", SHA) is kept
    assert removed == ([] if kept else [Removed("acme", SHA, len(BODY))])


def test_a_submission_naming_an_archive_during_a_sweep_keeps_it(tmp_path: Path) -> None:
    """The sweep found it old, and a submission claims it before it is removed."""
    at = now()
    workdirs = Workdirs(tmp_path / "workdirs")
    workdirs.save("acme", SHA, BODY)
    age(workdirs.path("acme", SHA), at, 30 * DAY)

    def named_while_a_submission_arrives(since: datetime) -> set[tuple[str, str]]:
        assert workdirs.claim("acme", SHA)  # the submission, recorded after this read
        return set()

    assert workdirs.sweep(at, RETENTION, named_while_a_submission_arrives) == []
    assert workdirs.has("acme", SHA)


def test_leftovers_of_interrupted_uploads_and_removals_go_once_old(tmp_path: Path) -> None:
    at = now()
    workdirs = Workdirs(tmp_path / "workdirs")
    folder = tmp_path / "workdirs" / "acme"
    folder.mkdir(parents=True)
    old = [folder / f"{SHA}.tar.gz.removing", folder / f"{SHA}.1a2b3c4d.tmp"]
    young = folder / f"{'cd' * 32}.5e6f7a8b.tmp"  # an upload being written now
    for path in [*old, young]:
        path.write_bytes(BODY)
    for path in old:
        age(path, at, 2 * DAY)

    workdirs.sweep(at, RETENTION, lambda since: set())

    assert [p.exists() for p in [*old, young]] == [False, False, True]


@pytest.mark.parametrize(
    "field", ["grace", "ttl", "every"], ids=lambda f: f"a negative {f} is refused"
)
def test_retention_refuses_negative_durations(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must not be negative"):
        Retention(**{field: timedelta(seconds=-1)})


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_a_run_launching_when_the_sweep_runs_keeps_its_workdir(
    store: Store, make_reconciler: MakeReconciler, tmp_path: Path
) -> None:
    """The archive is long past its TTL (the run waited long); the round that launches
    the run also sweeps, and the attempt still finds its workdir."""
    clock = Clock(now() + 30 * DAY)
    reconciler = make_reconciler(retention=RETENTION, clock=clock)
    workdirs = reconciler.workdirs
    workdirs.save("acme", SHA, BODY)
    run = store.submit("acme", workload())
    age(workdirs.path("acme", SHA), clock.at, 30 * DAY)

    report = reconciler.step()

    moved = store.get(run.id)
    assert moved is not None and moved.state is RunState.LAUNCHING
    assert (report.launched, report.workdirs_removed) == (1, 0)
    assert workdirs.has("acme", SHA)


def test_the_reconciler_sweeps_every_period_and_removes_after_the_grace(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    clock = Clock(now())
    reconciler = make_reconciler(retention=RETENTION, clock=clock)
    workdirs = reconciler.workdirs
    workdirs.save("acme", SHA, BODY)
    run = store.submit("acme", workload())
    end(store, run.id, RunState.CANCELLED, clock.at)
    age(workdirs.path("acme", SHA), clock.at, 30 * DAY)

    swept: list[tuple[timedelta, int, bool]] = []
    for step in [timedelta(0), 7 * HOUR, 5 * timedelta(minutes=1), 5 * timedelta(minutes=1)]:
        clock.at += step
        report = reconciler.step()
        swept.append((step, report.workdirs_removed, workdirs.has("acme", SHA)))

    assert swept == [
        (timedelta(0), 0, True),  # ended just now: within the grace
        (7 * HOUR, 1, False),  # the grace is over: removed
        (5 * timedelta(minutes=1), 0, False),  # no sweep before `every`
        (5 * timedelta(minutes=1), 0, False),
    ]


def _archive(seed: int, size: int) -> tuple[str, bytes]:
    """A real .tar.gz of one incompressible file of ``size`` bytes, and its SHA-256."""
    import hashlib
    import io
    import random
    import tarfile

    data = random.Random(seed).randbytes(size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("data.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    body = buffer.getvalue()
    return hashlib.sha256(body).hexdigest(), body


def test_a_tenant_cannot_keep_more_archive_bytes_than_its_quota(tmp_path: Path) -> None:
    from archipel.controlplane._workdirs import WorkdirQuotaError

    workdirs = Workdirs(tmp_path / "workdirs", quota=250)
    workdirs.save("acme", "a" * 64, b"x" * 100)
    workdirs.save("acme", "b" * 64, b"y" * 100)
    with pytest.raises(WorkdirQuotaError, match="past 250 bytes \\(200 already kept\\)"):
        workdirs.save("acme", "c" * 64, b"z" * 100)
    assert not workdirs.has("acme", "c" * 64)
    assert list((tmp_path / "workdirs" / "acme").glob("*.tmp")) == []  # nothing half-written
    workdirs.save("acme", "a" * 64, b"x" * 100)  # the same archive again: kept, not counted twice
    workdirs.save("other", "c" * 64, b"z" * 100)  # another tenant has its own quota
    assert workdirs.used("acme") == 200 and workdirs.used("other") == 100


def test_an_upload_past_the_quota_is_a_429_that_says_what_to_do(
    store: Store, make_reconciler: MakeReconciler, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from archipel.controlplane._api import create_app

    reconciler = make_reconciler()
    reconciler.workdirs = Workdirs(tmp_path / "quota-workdirs", quota=3000)
    api = TestClient(create_app(store, reconciler))
    headers = {"Authorization": f"Bearer {store.create_token('acme', 'submitter')}"}
    first_sha, first = _archive(1, 2000)
    second_sha, second = _archive(2, 2000)
    assert api.put(f"/v1/workdirs/{first_sha}", content=first, headers=headers).status_code == 204
    refused = api.put(f"/v1/workdirs/{second_sha}", content=second, headers=headers)
    assert refused.status_code == 429
    assert "--workdir-ttl" in refused.text and "past 3000 bytes" in refused.text
    assert not reconciler.workdirs.has("acme", second_sha)
