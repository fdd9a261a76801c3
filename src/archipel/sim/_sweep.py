"""Sweeps: every strategy of a scenario under several seeds, in parallel processes.

One draw of outages and data classes is one story; a strategy's figures over several
seeds say how much of a difference is the strategy and how much the draw. Each (strategy,
seed) pair is one task: a fresh store and kernel in a worker process (``spawn``: nothing
inherited from the caller), which loads the catalog and the policy once through the
``loader`` it is given. The results come back in (strategy, seed) order whatever order
the workers finish in, so a sweep's output is the same for the same scenario and seeds.

The workers are local processes (:func:`sweep`), or, for a sweep that outgrows one
machine, the tasks of a Ray cluster (:func:`sweep_on_ray`): the same tasks, the same
function, the same order of results.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from archipel.core import CatalogSnapshot, InputError
from archipel.policy import Policy
from archipel.sim._portfolio import Outcome, Scenario, run_strategy

#: what a worker needs to decide as the control plane would: the catalog and the policy
Loader = Callable[[], tuple[CatalogSnapshot, Policy]]

_loaded: tuple[CatalogSnapshot, Policy] | None = None


def _start(loader: Loader) -> None:
    global _loaded
    _loaded = loader()


def _on_ray_worker(
    scenario: Scenario, strategy: str, seed: int, loader: Loader
) -> tuple[str, int, Outcome]:
    """One task in a Ray worker process, which loads the catalog and policy once."""
    if _loaded is None:
        _start(loader)
    return _one((scenario, strategy, seed))


def sweep_on_ray(
    scenario: Scenario, seeds: Sequence[int], loader: Loader, address: str
) -> list[tuple[str, int, Outcome]]:
    """:func:`sweep` on a Ray cluster: ``address`` is a running cluster's (``HOST:PORT``,
    ``ray://HOST:PORT`` or ``auto``), or ``local`` to start one on this machine for the
    sweep. Archipel must be installed, at this version, where the cluster's workers run."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray on this machine: pip install 'archipel[ray]' (or drop --ray "
            "to sweep on local processes)"
        ) from None
    ours = not ray.is_initialized()
    if ours:
        try:
            if address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(
                f"--ray {address}: cannot join the Ray cluster ({exc}); give a running "
                "cluster's address (ray start --head prints it) or local"
            ) from None
    try:
        task = ray.remote(_on_ray_worker)
        shared = ray.put(scenario)
        refs = [
            task.remote(shared, strategy, seed, loader)
            for strategy in scenario.spec.strategies
            for seed in seeds
        ]
        results: list[tuple[str, int, Outcome]] = ray.get(refs)
        return results
    finally:
        if ours:
            ray.shutdown()


def _one(task: tuple[Scenario, str, int]) -> tuple[str, int, Outcome]:
    scenario, strategy, seed = task
    assert _loaded is not None, "the worker was not started with a loader"
    snapshot, policy = _loaded
    seeded = replace(scenario, spec=scenario.spec.model_copy(update={"seed": seed}))
    with tempfile.TemporaryDirectory(prefix="archipel-sim-") as folder:
        return strategy, seed, run_strategy(seeded, strategy, snapshot, policy, Path(folder))


def sweep(
    scenario: Scenario, seeds: Sequence[int], loader: Loader, workers: int = 1
) -> list[tuple[str, int, Outcome]]:
    """Every (strategy, seed): in the file's strategy order, then by seed."""
    tasks = [(scenario, s, seed) for s in scenario.spec.strategies for seed in seeds]
    if workers <= 1 or len(tasks) == 1:
        _start(loader)
        return [_one(t) for t in tasks]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=context, initializer=_start, initargs=(loader,)
    ) as pool:
        return list(pool.map(_one, tasks))


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over the seeds: its mean, lowest and highest."""

    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(sum(values) / len(values), min(values), max(values))


@dataclass(frozen=True, slots=True)
class Summary:
    """A strategy over the seeds of a sweep."""

    strategy: str
    seeds: int
    currency: str
    cost: Spread  # what the strategy pays: its total cost (see Outcome.total_cost)
    per_done_gpu_hour: Spread
    done: Spread
    refused: Spread
    failed: Spread
    lost_gpu_hours: Spread
    wait_p95_s: Spread
    dark_hours: Spread
    violations: int  # over every seed: must be 0


def _per_hour(o: Outcome) -> float:
    return float(o.total_cost / o.done_gpu_hours) if o.done_gpu_hours else 0.0


def summarize(results: Sequence[tuple[str, int, Outcome]]) -> list[Summary]:
    """Each strategy's figures over its seeds, in the order the results list them."""
    by: dict[str, list[Outcome]] = {}
    for strategy, _, outcome in results:
        by.setdefault(strategy, []).append(outcome)
    out = []
    for strategy, outcomes in by.items():

        def spread(figure: Callable[[Outcome], float | int | Decimal]) -> Spread:
            return Spread.of([float(figure(o)) for o in outcomes])  # noqa: B023

        out.append(
            Summary(
                strategy=strategy,
                seeds=len(outcomes),
                currency=outcomes[0].currency,
                cost=spread(lambda o: o.total_cost),
                per_done_gpu_hour=spread(_per_hour),
                done=spread(lambda o: o.done),
                refused=spread(lambda o: o.refused),
                failed=spread(lambda o: o.failed),
                lost_gpu_hours=spread(lambda o: o.lost_gpu_hours),
                wait_p95_s=spread(lambda o: o.wait_p95_s),
                dark_hours=spread(lambda o: o.dark_hours),
                violations=sum(len(o.violations) for o in outcomes),
            )
        )
    return out
