"""A tenant's runs read page by page, in order: indexes for the console's runs list.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_tenant_created", "runs", ["tenant", "created_at"])
    op.create_index("ix_runs_tenant_state_created", "runs", ["tenant", "state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_tenant_state_created", "runs")
    op.drop_index("ix_runs_tenant_created", "runs")
