"""The replay scheduler's filter and score: where each pod goes on a tiny cluster."""

from __future__ import annotations

import pytest

from archipel.sim._cluster import Cluster
from archipel.sim._openb import Node, Pod


def node(cpu: int = 8000, memory: int = 8192, gpus: int = 0) -> Node:
    return Node("n", cpu, memory, gpus, "G" if gpus else "")


def pod(gpus: int = 0, milli: int = 0, cpu: int = 1000, memory: int = 1024) -> Pod:
    return Pod("p", cpu, memory, gpus, milli or (1000 if gpus else 0), 0.0, None, 1.0)


# each case: the nodes, then the pods placed one after the other with where each goes:
# (node index, GPU slots) or None when no node fits
CASES = {
    "no GPU: best fit on CPU goes to the smaller node": (
        [node(8000), node(4000)],
        [(pod(cpu=3000), (1, ())), (pod(cpu=3000), (0, ())), (pod(cpu=3000), (0, ()))],
    ),
    "no GPU: CPU binds": ([node(2000)], [(pod(cpu=1500), (0, ())), (pod(cpu=1000), None)]),
    "memory binds": (
        [node(memory=2048, gpus=1)],
        [(pod(1, memory=2048), (0, (0,))), (pod(0, memory=1), None)],
    ),
    "two shares on one GPU": (
        [node(gpus=1)],
        [(pod(1, 600), (0, (0,))), (pod(1, 400), (0, (0,))), (pod(1, 1), None)],
    ),
    "a share that does not fit beside another": (
        [node(gpus=1)],
        [(pod(1, 600), (0, (0,))), (pod(1, 500), None)],
    ),
    "best fit packs the fuller GPU": (
        [node(gpus=2)],
        [
            (pod(1, 600), (0, (0,))),
            (pod(1, 300), (0, (0,))),
            (pod(1, 500), (0, (1,))),
            (pod(1, 100), (0, (0,))),
        ],
    ),
    "a whole GPU needs one nothing shares": (
        [node(gpus=2)],
        [(pod(1, 100), (0, (0,))), (pod(1), (0, (1,))), (pod(1), None), (pod(1, 900), (0, (0,)))],
    ),
    "several GPUs go to the node left with the fewest free": (
        [node(gpus=8), node(gpus=4), node(gpus=4)],
        [
            (pod(4), (1, (0, 1, 2, 3))),
            (pod(4), (2, (0, 1, 2, 3))),
            (pod(2), (0, (0, 1))),
            (pod(8), None),
        ],
    ),
    "a GPU pod never goes to a node without GPUs": (
        [node(64000), node(1000, gpus=1)],
        [(pod(1, 500, cpu=2000), None), (pod(1, 500, cpu=1000), (1, (0,)))],
    ),
}


@pytest.mark.parametrize(("nodes", "steps"), list(CASES.values()), ids=list(CASES))
def test_placements(
    nodes: list[Node], steps: list[tuple[Pod, tuple[int, tuple[int, ...]] | None]]
) -> None:
    cluster = Cluster(nodes)
    for p, want in steps:
        placement = cluster.place(p)
        got = None if placement is None else (placement.node, placement.gpus)
        assert got == want, p


def test_a_release_gives_back_exactly_what_was_taken() -> None:
    cluster = Cluster([node(gpus=2)])
    before = (cluster.cpu.copy(), cluster.memory.copy(), cluster.gpu.copy())
    placements = [cluster.place(p) for p in (pod(1, 300), pod(1), pod(0, cpu=500))]
    assert cluster.used()[0] == pytest.approx(0.65)
    for placement in placements:
        assert placement is not None
        cluster.release(placement)
    after = (cluster.cpu, cluster.memory, cluster.gpu)
    assert all((a == b).all() for a, b in zip(before, after, strict=True))
    assert cluster.used() == (0.0, 0.0, 0.0)
