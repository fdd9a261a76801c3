"""The ledger's entries: append-only, one row per record, corrections point back.

Revision ID: l0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "l0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("supersedes", sa.BigInteger(), nullable=True),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("workload", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("region", sa.String(200), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("data_class", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("gpu_hours_micro", sa.BigInteger(), nullable=False),
        sa.Column("gpu_hours_femto", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micro", sa.BigInteger(), nullable=False),
        sa.Column("cost_femto", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
    )
    op.create_index(
        "ux_ledger_entries_record", "ledger_entries", ["source", "key", "digest"], unique=True
    )
    op.create_index("ix_ledger_entries_supersedes", "ledger_entries", ["supersedes"])


def downgrade() -> None:
    op.drop_table("ledger_entries")
