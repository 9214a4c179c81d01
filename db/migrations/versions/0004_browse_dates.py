"""The photo browser with a date range and a final label walks an index in (added_at, id) order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (current_label, added_at) and the row id after it: a label's photos of a date range, newest
    # first, without sorting them (SQLite ends every index with the rowid).
    op.create_index("ix_images_final_added", "images", ["current_label", "added_at"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sa.inspect(bind).has_table("sqlite_stat1"):
        # As in 0003: an ANALYZEd file has no statistics for the new index, and SQLite then takes it for cheap.
        op.execute("ANALYZE ix_images_final_added")


def downgrade() -> None:
    op.drop_index("ix_images_final_added", table_name="images")
