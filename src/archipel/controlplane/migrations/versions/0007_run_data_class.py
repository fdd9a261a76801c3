"""A run's data class as a column of its own, so a tenant's runs can be listed by it.

Revision ID: 0007
Revises: 0006

Runs submitted before this revision get theirs from their stored spec (its
``data.class``, which every stored spec has).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("data_class", sa.String(100), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE runs SET data_class = (spec::json -> 'data' ->> 'class')")
    else:
        op.execute("UPDATE runs SET data_class = json_extract(spec, '$.data.class')")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # batch: SQLite drops columns by copying
        batch.drop_column("data_class")
