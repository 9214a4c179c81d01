"""A million rows: images.judged_label, a covering index per statistic, queue indices that cover filters (issue 6).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDICES = {
    "images": {
        "ix_images_decided": ["current_action", "judged_label", "current_label", "reviewed_at"],
        "ix_images_final_label": ["current_label", "reviewed_at"],
        "ix_images_predicted_label": ["top_label", "added_at"],
        "ix_images_score": ["top_score", "added_at"],
        "ix_images_added_review": ["added_at", "current_review_id"],
    },
    "reviews": {
        "ix_reviews_activity": ["reviewer", "action", "created_at"],
        "ix_reviews_action": ["action", "created_at"],
    },
}


# The queue's indices gain the columns of its other filters (was: up to the sort key and id).
QUEUE = {
    "ix_images_queue_score": (["current_review_id", "top_score", "id"], ["top_label", "added_at", "source"]),
    "ix_images_queue_label": (["current_review_id", "top_label", "top_score", "id"], ["added_at", "source"]),
    "ix_images_queue_id": (["current_review_id", "id"], ["top_label", "top_score", "added_at", "source"]),
}


def upgrade() -> None:
    op.add_column("images", sa.Column("judged_label", sa.String(100), nullable=True))
    # Backfill before indexing: each current decision's judged prediction, as submit_review now records it.
    images = sa.table("images", sa.column("current_review_id"), sa.column("judged_label"))
    reviews = sa.table("reviews", sa.column("id"), sa.column("prediction_id"))
    predictions = sa.table("predictions", sa.column("id"), sa.column("top_label"))
    judged = (
        sa.select(predictions.c.top_label)
        .select_from(reviews.join(predictions, predictions.c.id == reviews.c.prediction_id))
        .where(reviews.c.id == images.c.current_review_id)
        .scalar_subquery()
    )
    op.execute(images.update().where(images.c.current_review_id.is_not(None)).values(judged_label=judged))
    for table, indices in INDICES.items():
        for name, columns in indices.items():
            op.create_index(name, table, columns)
    for name, (columns, filters) in QUEUE.items():
        op.drop_index(name, table_name="images")
        op.create_index(name, "images", columns + filters)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sa.inspect(bind).has_table("sqlite_stat1"):
        # A database ANALYZEd before has statistics for the old indices only, and SQLite then takes a
        # new one for cheap in unrelated queries (browsing a common label sorted 100k rows): measure them.
        for name in [*INDICES["images"], *INDICES["reviews"], *QUEUE]:
            op.execute(f"ANALYZE {name}")


def downgrade() -> None:
    for name, (columns, _) in QUEUE.items():
        op.drop_index(name, table_name="images")
        op.create_index(name, "images", columns)
    for table, indices in INDICES.items():
        for name in indices:
            op.drop_index(name, table_name=table)
    with op.batch_alter_table("images") as batch:
        batch.drop_column("judged_label")
