"""Baseline for ``bench/plan_bench.py``: SkyPilot 0.14.1's optimizer on Archipel's catalog data.

Runs under SkyPilot's own virtualenv (``bench/setup_skypilot.sh`` makes it), never under
Archipel's. The module imports only the standard library at the top, so ``plan_bench.py``
can import :func:`prepare_home` from it.

SkyPilot reads its price catalogs from ``~/.sky/catalogs/v8/<cloud>/vms.csv``; a file there
without a ``.meta/<cloud>/vms.csv.md5`` next to it counts as user-modified and is never
downloaded again, so SkyPilot runs offline on whatever is copied there. :func:`prepare_home`
makes a throw-away HOME holding the same SkyPilot-format CSVs that Archipel's snapshot is
built from (``src/archipel/catalog/_data/skypilot``, byte-identical to
``shared/data/catalog/skypilot``), so nothing touches the real home.

The optimizer only considers *enabled* clouds, which normally means clouds with working
credentials (``sky check``). There are none here, so the worker monkeypatches
``sky.check.get_cached_enabled_clouds_or_refresh`` to return every SkyPilot cloud that has a
catalog in that folder. That is the only change to SkyPilot, it is a benchmark-only shortcut,
and it is reported in the output (``"patched"``).

Modes (each prints nothing useful on stdout, SkyPilot prints its spinner there; the figures go
to ``--out`` as JSON):

- ``--import-only``: time ``import sky`` and ``sky.optimizer`` in this fresh process.
- ``--requests JSON``: import, then ``Optimizer.optimize`` once per distinct request (warm-up,
  the first call is reported on its own), then once per request timed.

Run it by hand with ``bench/.venv-skypilot/bin/python bench/skypilot_baseline.py --requests
'[["H100", 8, false]]'``: without ``SKYBENCH_HOME_READY`` in the environment it makes the
temporary HOME itself and re-runs in it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: the SkyPilot-format catalogs Archipel's snapshot is built from (gzip-compressed CSVs)
PACKAGED_CATALOG = ROOT / "src" / "archipel" / "catalog" / "_data" / "skypilot"
SCHEMA = "v8"  # CATALOG_SCHEMA_VERSION of skypilot 0.14.1
READY = "SKYBENCH_HOME_READY"


def prepare_home(source: Path = PACKAGED_CATALOG) -> Path:
    """A temporary HOME whose ``~/.sky/catalogs/v8`` holds the catalog CSVs of ``source``."""
    home = Path(tempfile.mkdtemp(prefix="skybench-home-"))
    target = home / ".sky" / "catalogs" / SCHEMA
    for path in sorted(source.glob("*/*.csv*")):
        out = target / path.parent.name / path.name.removesuffix(".gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(path, out)
    return home


def sky_env(home: Path) -> dict[str, str]:
    """The environment a SkyPilot worker runs in: the temporary HOME, no usage reporting."""
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            READY: "1",
            "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
            "SKYPILOT_DEBUG": "0",
        }
    )
    return env


def _catalog_clouds() -> list[str]:
    base = Path.home() / ".sky" / "catalogs" / SCHEMA
    return sorted(p.parent.name for p in base.glob("*/vms.csv"))


def _import_sky() -> tuple[float, Any]:
    started = time.perf_counter()
    import sky
    import sky.optimizer

    return time.perf_counter() - started, sky


def _enable_catalog_clouds(sky: Any) -> list[str]:
    """Monkeypatch the enabled-cloud cache: every SkyPilot cloud with a catalog here."""
    from sky import check
    from sky.utils import registry

    enabled = []
    for name in _catalog_clouds():
        try:
            cloud = registry.CLOUD_REGISTRY.from_str(name)
        except ValueError:  # a catalog SkyPilot 0.14.1 has no cloud for (hyperstack, ...)
            cloud = None
        if cloud is not None:
            enabled.append(cloud)

    def enabled_clouds(*_args: Any, **_kwargs: Any) -> list[Any]:
        return list(enabled)

    check.get_cached_enabled_clouds_or_refresh = enabled_clouds
    return [str(c) for c in enabled]


def _optimize(sky: Any, accelerator: str, count: int, spot: bool) -> tuple[float, dict[str, Any]]:
    from sky import optimizer

    task = sky.Task(run="true")
    task.set_resources(sky.Resources(accelerators={accelerator: count}, use_spot=spot))
    with sky.Dag() as dag:
        dag.add(task)
    started = time.perf_counter()
    try:
        optimizer.Optimizer.optimize(dag, quiet=True)
    except sky.exceptions.ResourcesUnavailableError:
        return time.perf_counter() - started, {"feasible": False}
    elapsed = time.perf_counter() - started
    best = task.best_resources
    return elapsed, {
        "feasible": True,
        "cloud": str(best.cloud),
        "region": best.region,
        "instance_type": best.instance_type,
        "spot": bool(best.use_spot),
        "price_per_hour": round(float(best.get_cost(3600)), 4),
    }


def work(args: argparse.Namespace) -> dict[str, Any]:
    import_s, sky = _import_sky()
    out: dict[str, Any] = {
        "skypilot_version": sky.__version__,
        "python": sys.version.split()[0],
        "import_s": import_s,
    }
    if args.import_only:
        return out
    requests = [(str(a), int(n), bool(s)) for a, n, s in json.loads(args.requests)]
    out["enabled_clouds"] = _enable_catalog_clouds(sky)
    out["patched"] = "sky.check.get_cached_enabled_clouds_or_refresh -> catalog clouds"
    warmup: dict[str, Any] = {}
    for i, req in enumerate(dict.fromkeys(requests)):
        elapsed, best = _optimize(sky, *req)
        if i == 0:
            out["first_optimize_s"] = elapsed
        warmup[f"{req[0]}:{req[1]}{' spot' if req[2] else ''}"] = {**best, "s": elapsed}
    out["picks"] = warmup
    times = [_optimize(sky, *req)[0] for req in requests]
    out["warm_s"] = times
    out["warm_median_s"] = statistics.median(times)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--import-only", action="store_true", help="time the import only")
    mode.add_argument(
        "--requests", help='JSON list of [accelerator, count, spot], e.g. [["H100", 8, false]]'
    )
    parser.add_argument("--out", help="write the figures here as JSON (default: stdout)")
    args = parser.parse_args()
    if not os.environ.get(READY):  # standalone: make the temporary HOME, re-run inside it
        home = prepare_home()
        try:
            return subprocess.run([sys.executable, *sys.argv], env=sky_env(home)).returncode
        finally:
            shutil.rmtree(home, ignore_errors=True)
    figures = work(args)
    text = json.dumps(figures, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
