"""Second opinions: decided photos sampled back, blind, for a different moderator (issue 17).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATES = ("open", "agreed", "disagreed", "adjudicated")


def upgrade() -> None:
    op.create_table(
        "second_opinions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("first_review_id", sa.Integer(), nullable=False),
        sa.Column("first_reviewer", sa.String(100), nullable=False),
        sa.Column("first_label", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("second_reviewer", sa.String(100), nullable=True),
        sa.Column("second_label", sa.String(100), nullable=True),
        sa.Column("second_at", sa.DateTime(), nullable=True),
        sa.Column("adjudication_review_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATES)})", name="ck_second_opinions_status"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_second_opinions_image_id_images"),
        sa.ForeignKeyConstraint(["first_review_id"], ["reviews.id"], name="fk_second_opinions_first_review_id_reviews"),
        sa.ForeignKeyConstraint(
            ["adjudication_review_id"], ["reviews.id"], name="fk_second_opinions_adjudication_review_id_reviews"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_second_opinions"),
        sa.UniqueConstraint("first_review_id", name="uq_second_opinions_first_review_id"),
    )
    op.create_index("ix_second_opinions_status", "second_opinions", ["status", "id"])
    op.create_index("ix_second_opinions_image_id", "second_opinions", ["image_id"])


def downgrade() -> None:
    op.drop_table("second_opinions")
