"""Archipel: a sovereign multi-cloud AI compute broker.

The top-level package only carries the version; each sub-package exposes its
own public API through its ``__init__``:

- :mod:`archipel.core` — vocabulary (offers, providers, workloads, verdicts), no I/O;
- :mod:`archipel.catalog` — the offer snapshot and the provider registry;
- :mod:`archipel.policy` — sovereignty rules as data;
- :mod:`archipel.placement` — the placement engine;
- :mod:`archipel.cli` — the ``archipel`` command.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
