"""A GPU-sharing cluster's free resources, and where a pod goes on it (the fidelity replay).

The filter and the score of the replay's scheduler, on the nodes of the ``openb`` node
list kept as columns (one row per node, one column per GPU slot):

- **filter**: a node fits a pod when its free CPU and memory cover the pod's, and its
  GPUs cover the pod's GPUs: a pod sharing a GPU (``num_gpu`` 1, ``gpu_milli`` < 1000)
  needs one GPU with that many milli-GPUs free; a pod of ``n`` whole GPUs needs ``n``
  GPUs that nothing uses; a pod of no GPU needs no GPU.
- **score**: best fit. Of the nodes (and GPUs) that fit, the one left with the least of
  the pod's main resource free (a shared GPU's milli-GPUs, whole free GPUs, or CPU for a
  pod of no GPU); ties go to the node first in the list, then its first GPU. This is the
  bin-packing of GPU-sharing schedulers (Alibaba's ``gpushare`` extender packs shares
  onto the fullest GPU that fits), not Kubernetes' default spreading score.

Everything is whole numbers (milli-cores, MiB, milli-GPUs), so a release gives back
exactly what a placement took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from archipel.sim._openb import Node, Pod

#: milli-GPUs in one GPU
WHOLE = 1000
_NONE = np.iinfo(np.int64).max  # the score of a node (or GPU) that does not fit


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod went: its node, its GPUs on that node, and what it took."""

    node: int  # index in the node list
    gpus: tuple[int, ...]  # GPU slots of the node
    gpu_milli: int  # milli-GPUs taken on each of ``gpus``
    cpu_milli: int
    memory_mib: int


class Cluster:
    """The free resources of every node (see the module's text)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        gpus = np.array([n.gpus for n in nodes], dtype=np.int64)
        slots = max(int(gpus.max(initial=0)), 1)
        self.nodes = tuple(nodes)
        self.has_gpu = np.arange(slots)[None, :] < gpus[:, None]
        self.cpu = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
        self.memory = np.array([n.memory_mib for n in nodes], dtype=np.int64)
        self.gpu = np.where(self.has_gpu, WHOLE, 0).astype(np.int64)
        self._totals = (int(self.gpu.sum()), int(self.cpu.sum()), int(self.memory.sum()))

    def place(self, pod: Pod) -> Placement | None:
        """Take the pod's resources on the best node that fits it; ``None`` if none fits."""
        fits = (self.cpu >= pod.cpu_milli) & (self.memory >= pod.memory_mib)
        if pod.num_gpu == 0:
            score = np.where(fits, self.cpu - pod.cpu_milli, _NONE)
            node = int(np.argmin(score))
            found = bool(fits[node])
            gpus: tuple[int, ...] = ()
            milli = 0
        elif pod.shares_a_gpu:
            milli = pod.gpu_milli
            ok = fits[:, None] & self.has_gpu & (self.gpu >= milli)
            score = np.where(ok, self.gpu - milli, _NONE)
            node, slot = divmod(int(np.argmin(score)), score.shape[1])
            found, gpus = bool(ok[node, slot]), (slot,)
        else:
            milli = WHOLE
            idle = self.has_gpu & (self.gpu == WHOLE)
            free = idle.sum(axis=1)
            ok = fits & (free >= pod.num_gpu)
            node = int(np.argmin(np.where(ok, free - pod.num_gpu, _NONE)))
            found = bool(ok[node])
            gpus = tuple(int(g) for g in np.flatnonzero(idle[node])[: pod.num_gpu])
        if not found:
            return None
        placement = Placement(node, gpus, milli, pod.cpu_milli, pod.memory_mib)
        self._take(placement, -1)
        return placement

    def release(self, placement: Placement) -> None:
        """Give back what ``placement`` took."""
        self._take(placement, +1)

    def _take(self, p: Placement, sign: int) -> None:
        self.cpu[p.node] += sign * p.cpu_milli
        self.memory[p.node] += sign * p.memory_mib
        for g in p.gpus:
            self.gpu[p.node, g] += sign * p.gpu_milli

    def used(self) -> tuple[float, float, float]:
        """The shares of the cluster's GPUs, CPU and memory in use now."""
        free = (int(self.gpu.sum()), int(self.cpu.sum()), int(self.memory.sum()))
        g, c, m = (1 - f / t if t else 0.0 for f, t in zip(free, self._totals, strict=True))
        return g, c, m
