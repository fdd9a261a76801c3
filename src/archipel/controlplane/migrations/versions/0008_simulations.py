"""Simulations run from the console: the uploaded scenario, its trace, and the result.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "simulations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("trace_name", sa.String(255), nullable=False),
        sa.Column("trace", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_simulations_tenant_created", "simulations", ["tenant", "created_at"])
    op.create_index("ix_simulations_state_created", "simulations", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_simulations_state_created", "simulations")
    op.drop_index("ix_simulations_tenant_created", "simulations")
    op.drop_table("simulations")
