"""The ledger's tables, as SQLAlchemy Core metadata (the migrations create them).

``ledger_entries`` is append-only: a row is inserted once and never updated
or deleted. ``(source, key, digest)`` is unique, so the same record read
twice is one row whatever the order of ingests. A correction points at the
row it supersedes (``supersedes``); the current entries are those no row
points at. Times are integer microseconds since the epoch, money and
quantities two integer columns (see :func:`archipel.ledger.split_fixed`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

#: the version table of the ledger's own migration chain, beside any other in the database
VERSION_TABLE = "archipel_ledger_version"

KEY_LENGTH = 200
NAME_LENGTH = 200

entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("source", String(40), nullable=False),
    Column("key", String(KEY_LENGTH), nullable=False),
    Column("digest", String(32), nullable=False),
    Column("supersedes", BigInteger(), nullable=True),
    Column("start_us", BigInteger(), nullable=False),
    Column("end_us", BigInteger(), nullable=False),
    Column("tenant", String(NAME_LENGTH), nullable=False),
    Column("workload", String(NAME_LENGTH), nullable=True),
    Column("model", String(NAME_LENGTH), nullable=True),
    Column("provider", String(NAME_LENGTH), nullable=True),
    Column("region", String(NAME_LENGTH), nullable=True),
    Column("country", String(2), nullable=True),
    Column("data_class", String(NAME_LENGTH), nullable=True),
    Column("status", Integer(), nullable=True),
    Column("gpu_hours_micro", BigInteger(), nullable=False),
    Column("gpu_hours_femto", BigInteger(), nullable=False),
    Column("input_tokens", BigInteger(), nullable=False),
    Column("output_tokens", BigInteger(), nullable=False),
    Column("cost_micro", BigInteger(), nullable=False),
    Column("cost_femto", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=True),
    Column("project", String(NAME_LENGTH), nullable=True),
    Column("accelerator", String(NAME_LENGTH), nullable=True),
    Index("ux_ledger_entries_record", "source", "key", "digest", unique=True),
    Index("ix_ledger_entries_supersedes", "supersedes"),
)

#: the columnar store's batches: one row per ingest that wrote Parquet partitions, committed
#: after its files are in place (a file no batch lists is an orphan, never read)
batches = Table(
    "ledger_batches",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("path", Text(), nullable=False),
    Column("size", BigInteger(), nullable=False),
    Column("fingerprint", String(80), nullable=False),
    Column("offset", BigInteger(), nullable=False),
    Column("lines", BigInteger(), nullable=False),
    Column("new", BigInteger(), nullable=False),
    Column("corrections", BigInteger(), nullable=False),
    Column("duplicates", BigInteger(), nullable=False),
    Column("malformed", BigInteger(), nullable=False),
    Column("at_us", BigInteger(), nullable=False),
    Index("ix_ledger_batches_path", "path"),
)

#: the Parquet files each batch wrote, relative to the store's folder
parts = Table(
    "ledger_parts",
    metadata,
    Column("batch", BigInteger(), ForeignKey("ledger_batches.id"), nullable=False),
    Column("file", String(400), primary_key=True),
    Column("source", String(40), nullable=False),
    Column("rows", BigInteger(), nullable=False),
)

#: the folder of the columnar store, recorded at its first use (one row)
store = Table(
    "ledger_store",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("folder", Text(), nullable=False),
)
