"""The columnar store's manifest: its batches, their Parquet files, and its folder.

Bulk files are ingested into Parquet partitions beside the database; these
tables say which files are committed (a file no batch lists is an orphan of a
stopped ingest and is never read), how far into each source file an ingest
read, and which folder the store is (recorded once, so that another is refused).

Revision ID: l0003
Revises: l0002
"""

import sqlalchemy as sa
from alembic import op

revision = "l0003"
down_revision = "l0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_batches",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("new", sa.BigInteger(), nullable=False),
        sa.Column("corrections", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("malformed", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ledger_batches_path", "ledger_batches", ["path"])
    op.create_table(
        "ledger_parts",
        sa.Column("batch", sa.BigInteger(), sa.ForeignKey("ledger_batches.id"), nullable=False),
        sa.Column("file", sa.String(400), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "ledger_store",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("folder", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_store")
    op.drop_table("ledger_parts")
    op.drop_table("ledger_batches")
