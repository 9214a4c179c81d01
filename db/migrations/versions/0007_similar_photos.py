"""Similar photos and near-duplicates: each photo's embedding per model fingerprint, and its perceptual hash.

Existing photos get theirs from `foodclf reclassify` (which re-reads every stored photo without them).

Revision ID: 0007
Revises: 0013
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_embeddings_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_embeddings"),
        sa.UniqueConstraint("fingerprint", "image_id", name="uq_embeddings_fingerprint_image_id"),
    )
    op.create_index("ix_embeddings_fingerprint_id", "embeddings", ["fingerprint", "id"])
    op.create_table(
        "image_hashes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("phash", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_image_hashes_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_image_hashes"),
        sa.UniqueConstraint("image_id", name="uq_image_hashes_image_id"),
    )


def downgrade() -> None:
    op.drop_table("image_hashes")
    op.drop_index("ix_embeddings_fingerprint_id", table_name="embeddings")
    op.drop_table("embeddings")
