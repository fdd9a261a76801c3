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

# A fleet of 10,000 workloads is about 1.5 MB of YAML; a file far larger is a
# mistake or an attack, and parsing it would take minutes and gigabytes.
MAX_FILE_MB = 8.0
# Specs nest a few levels (fleet > workloads > resources > accelerators);
# anything deeper is not a spec, and deep nesting exhausts the parser's stack.
MAX_DEPTH = 32
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: faster


def data_dir() -> Path:
    """The user's data directory (``ARCHIPEL_DATA_DIR`` or the platform default)."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("archipel", appauthor=False))


def default_db_url() -> str:
    """The database a server, its tokens and the ledger share when ``--db`` is not given."""
    return f"sqlite:///{data_dir() / 'state.db'}"


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


def read_text(path: Path, max_mb: float = MAX_FILE_MB, kind: str = "file") -> str:
    """A user's file as text, read no further than ``max_mb`` megabytes: a larger file,
    a missing one or one that is not UTF-8 is one :class:`InputError` naming it."""
    limit = int(max_mb * 1_000_000)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if len(data) > limit:
        raise InputError(
            f"{path}: larger than {max_mb:g} MB, the limit for spec files; "
            "if it is meant to be this big, raise the limit with --max-file-size MB"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def read_yaml_documents(path: Path, max_mb: float = MAX_FILE_MB) -> list[Any]:
    """Every YAML document in a file, with errors that name the file and line.

    A file above ``max_mb`` megabytes, or nested deeper than :data:`MAX_DEPTH`,
    is refused with an :class:`InputError` before it costs minutes of parsing.
    """
    text = read_text(path, max_mb)
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        documents = [_TOO_DEEP]
    for doc in documents:
        if doc is _TOO_DEEP or _depth(doc) > MAX_DEPTH:
            raise InputError(
                f"{path}: nested more than {MAX_DEPTH} levels deep; a spec nests a few levels"
            )
    return documents


_TOO_DEEP = object()


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack += [(child, level + 1) for child in children]
    return deepest


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


def load_workloads(path: Path, max_mb: float = MAX_FILE_MB) -> list[Workload]:
    """Workload specs from a file: one spec, a list, ``workloads: [...]`` or several documents."""
    documents = read_yaml_documents(path, max_mb)
    if not documents:
        raise SpecError(str(path), ["the file holds no workload"])
    workloads = [parse_workload(doc, where) for where, doc in _workload_docs(documents, str(path))]
    names = [w.name for w in workloads]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(str(path), [f"workload names must be unique: {', '.join(dupes)}"])
    return workloads


def load_fleet(path: Path, max_mb: float = MAX_FILE_MB) -> Any:
    """A fleet file, with each ``{file: PATH}`` workload entry read relative to it.

    ``max_mb`` applies to each file.
    """
    from archipel.core import parse_fleet

    documents = read_yaml_documents(path, max_mb)
    if len(documents) != 1 or not isinstance(documents[0], Mapping):
        raise SpecError(str(path), ["a fleet file holds one mapping with horizon and workloads"])
    doc = dict(documents[0])
    doc.pop("offers", None)  # private-offers files, read by the catalog side (cli/_offers.py)
    items = doc.get("workloads")
    if not isinstance(items, list):
        raise SpecError(str(path), ["workloads: must be a list of workload specs or {file: PATH}"])
    workloads: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and set(item) == {"file"}:
            workloads += load_workloads(path.parent / str(item["file"]), max_mb)
        else:
            workloads.append(parse_workload(item, f"{path}: workloads[{i}]"))
    doc["workloads"] = workloads
    return parse_fleet(doc, str(path))
