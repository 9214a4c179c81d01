"""The learning loop: where a model's training photos came from, and its promotions (forced ones with a reason).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        # {"folders": [...], "database": [filters...]}: what a retrain from this model replays.
        batch.add_column(sa.Column("training_source", sa.JSON(), nullable=True))
        # Every activation through the promotion gate: verdict, table, and who forced it and why.
        batch.add_column(sa.Column("promotions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.drop_column("promotions")
        batch.drop_column("training_source")
