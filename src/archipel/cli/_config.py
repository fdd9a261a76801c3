"""Where the CLI finds its inputs: the snapshot, the policy, files and environment.

The CLI is the only place that reads files named by the user or environment
variables; everything below it takes values as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from archipel.core import InputError, SpecError, Workload, parse_workload

ENV_CATALOG = "ARCHIPEL_CATALOG"
ENV_DATA_DIR = "ARCHIPEL_DATA_DIR"


def data_dir() -> Path:
    """The user's data directory (``ARCHIPEL_DATA_DIR`` or the platform default)."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("archipel", appauthor=False))


def refreshed_snapshot_path() -> Path:
    """Where ``archipel catalog refresh`` writes its snapshot."""
    return data_dir() / "catalog" / "snapshot.npz"


def snapshot_path() -> Path:
    """The snapshot to use: ``ARCHIPEL_CATALOG``, else a refreshed one, else the shipped one."""
    override = os.environ.get(ENV_CATALOG)
    if override:
        path = Path(override)
        if not path.is_file():
            raise InputError(f"{ENV_CATALOG}={override}: no such file")
        return path
    refreshed = refreshed_snapshot_path()
    if refreshed.is_file():
        return refreshed
    from archipel.catalog import SNAPSHOT_FILE

    return SNAPSHOT_FILE


def read_yaml_documents(path: Path) -> list[Any]:
    """Every YAML document in a file, with errors that name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None


def _workload_docs(documents: list[Any], source: str) -> Iterator[tuple[str, Any]]:
    for n, doc in enumerate(documents):
        if isinstance(doc, Mapping) and "workloads" in doc:
            items = doc["workloads"]
            if not isinstance(items, list):
                raise SpecError(source, ["workloads: must be a list of workload specs"])
            for i, item in enumerate(items):
                yield f"{source}: workloads[{i}]", item
        elif isinstance(doc, list):
            for i, item in enumerate(doc):
                yield f"{source}: [{i}]", item
        else:
            yield (f"{source}: document {n + 1}" if len(documents) > 1 else source), doc


def load_workloads(path: Path) -> list[Workload]:
    """Workload specs from a file: one spec, a list, ``workloads: [...]`` or several documents."""
    documents = read_yaml_documents(path)
    if not documents:
        raise SpecError(str(path), ["the file holds no workload"])
    workloads = [parse_workload(doc, where) for where, doc in _workload_docs(documents, str(path))]
    names = [w.name for w in workloads]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(str(path), [f"workload names must be unique: {', '.join(dupes)}"])
    return workloads


def load_fleet(path: Path) -> Any:
    """A fleet file, with each ``{file: PATH}`` workload entry read relative to it."""
    from archipel.core import parse_fleet

    documents = read_yaml_documents(path)
    if len(documents) != 1 or not isinstance(documents[0], Mapping):
        raise SpecError(str(path), ["a fleet file holds one mapping with horizon and workloads"])
    doc = dict(documents[0])
    items = doc.get("workloads")
    if not isinstance(items, list):
        raise SpecError(str(path), ["workloads: must be a list of workload specs or {file: PATH}"])
    workloads: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and set(item) == {"file"}:
            workloads += load_workloads(path.parent / str(item["file"]))
        else:
            workloads.append(parse_workload(item, f"{path}: workloads[{i}]"))
    doc["workloads"] = workloads
    return parse_fleet(doc, str(path))
