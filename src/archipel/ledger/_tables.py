"""The ledger's tables, as SQLAlchemy Core metadata (the migrations create them).

``ledger_entries`` is append-only: a row is inserted once and never updated
or deleted. ``(source, key, digest)`` is unique, so the same record read
twice is one row whatever the order of ingests. A correction points at the
row it supersedes (``supersedes``); the current entries are those no row
points at. Times are integer microseconds since the epoch, money and
quantities two integer columns (see :func:`archipel.ledger.split_fixed`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

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
    Index("ux_ledger_entries_record", "source", "key", "digest", unique=True),
    Index("ix_ledger_entries_supersedes", "supersedes"),
)
