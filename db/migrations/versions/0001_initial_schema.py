"""Initial schema: images, predictions and append-only reviews.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("stored_path", sa.String(80), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("added_by", sa.String(100), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("top_label", sa.String(100), nullable=True),
        sa.Column("top_score", sa.Float(), nullable=True),
        sa.Column("current_review_id", sa.Integer(), nullable=True),
        sa.Column("current_label", sa.String(100), nullable=True),
        sa.Column("current_action", sa.String(16), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("source IN ('upload', 'folder', 'api')", name="ck_images_source"),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("content_id", name="uq_images_content_id"),
    )
    op.create_index("ix_images_queue_score", "images", ["current_review_id", "top_score", "id"])
    op.create_index("ix_images_queue_label", "images", ["current_review_id", "top_label", "top_score", "id"])
    op.create_index("ix_images_queue_id", "images", ["current_review_id", "id"])
    op.create_index("ix_images_top_label", "images", ["top_label", "id"])
    op.create_index("ix_images_current_label", "images", ["current_label", "id"])
    op.create_index("ix_images_added_at", "images", ["added_at", "id"])
    op.create_index("ix_images_reviewed_at", "images", ["reviewed_at"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("top_label", sa.String(100), nullable=False),
        sa.Column("top_score", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_predictions_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.UniqueConstraint("image_id", "fingerprint", name="uq_predictions_image_id_fingerprint"),
    )
    op.create_index("ix_predictions_fingerprint_score", "predictions", ["fingerprint", "top_score", "image_id"])
    op.create_index("ix_predictions_top_label", "predictions", ["top_label"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("final_label", sa.String(100), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("undoes_review_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "action IN ('confirmed', 'corrected', 'not_food', 'skipped', 'undone')", name="ck_reviews_action"
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_reviews_image_id_images"),
        sa.ForeignKeyConstraint(["prediction_id"], ["predictions.id"], name="fk_reviews_prediction_id_predictions"),
        sa.ForeignKeyConstraint(["undoes_review_id"], ["reviews.id"], name="fk_reviews_undoes_review_id_reviews"),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("undoes_review_id", name="uq_reviews_undoes_review_id"),
    )
    op.create_index("ix_reviews_image", "reviews", ["image_id", "id"])
    op.create_index("ix_reviews_reviewer", "reviews", ["reviewer", "id"])
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"])


def downgrade() -> None:
    op.drop_table("reviews")
    op.drop_table("predictions")
    op.drop_table("images")
