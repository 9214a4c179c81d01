"""Every score of a prediction (float16 in the model's label order), its margin and entropy; queue orders.

Existing predictions kept only their top k: they migrate into the new form with the labels their model's
predictions ever named as the layout, NaN for the scores nobody kept, and the margin and a lower bound
of the entropy from the top k.

Revision ID: 0010
Revises: 0006
Create Date: 2026-11-26
"""

import json
import math
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

QUEUE = {
    "ix_images_queue_margin": ["current_review_id", "top_margin", "id", "top_label", "added_at", "source"],
    "ix_images_queue_entropy": ["current_review_id", "top_entropy", "id", "top_label", "added_at", "source"],
}
BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "score_layouts",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_score_layouts"),
    )
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("all_scores", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("margin", sa.Float(), nullable=True))
        batch.add_column(sa.Column("entropy", sa.Float(), nullable=True))
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("top_margin", sa.Float(), nullable=True))
        batch.add_column(sa.Column("top_entropy", sa.Float(), nullable=True))
    _migrate_predictions()
    for name, columns in QUEUE.items():
        op.create_index(name, "images", columns)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sa.inspect(bind).has_table("sqlite_stat1"):
        for name in QUEUE:  # as in 0003: unmeasured new indices look cheap to SQLite's planner
            op.execute(f"ANALYZE {name}")


def _migrate_predictions() -> None:
    """Old rows -> new form: a layout per fingerprint, NaN-padded vectors, margin and entropy."""
    bind = op.get_bind()
    predictions = sa.table(
        "predictions",
        sa.column("id"),
        sa.column("fingerprint"),
        sa.column("scores"),
        sa.column("all_scores"),
        sa.column("margin"),
        sa.column("entropy"),
    )
    labels = defaultdict(set)
    for fingerprint, scores in bind.execute(sa.select(predictions.c.fingerprint, predictions.c.scores)):
        labels[fingerprint].update(s["label"] for s in _scores(scores))
    layouts = {fingerprint: sorted(names) for fingerprint, names in labels.items()}
    if layouts:
        table = sa.table(
            "score_layouts", sa.column("fingerprint"), sa.column("labels", sa.JSON), sa.column("created_at")
        )
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        bind.execute(
            table.insert(), [{"fingerprint": f, "labels": names, "created_at": now} for f, names in layouts.items()]
        )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(predictions.c.id, predictions.c.fingerprint, predictions.c.scores)
            .where(predictions.c.id > last)
            .order_by(predictions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        updates = []
        for id_, fingerprint, scores in rows:
            known = {s["label"]: float(s["score"]) for s in _scores(scores)}
            layout = layouts[fingerprint]
            vector = np.array([known.get(label, math.nan) for label in layout], dtype="<f2")
            margin, entropy = _margin_and_entropy(list(known.values()))
            updates.append({"row_id": id_, "all_scores": vector.tobytes(), "margin": margin, "entropy": entropy})
        bind.execute(
            predictions.update()
            .where(predictions.c.id == sa.bindparam("row_id"))
            .values(
                all_scores=sa.bindparam("all_scores"), margin=sa.bindparam("margin"), entropy=sa.bindparam("entropy")
            ),
            updates,
        )
        last = rows[-1][0]
    images = sa.table("images", sa.column("prediction_id"), sa.column("top_margin"), sa.column("top_entropy"))
    latest = sa.table("predictions", sa.column("id"), sa.column("margin"), sa.column("entropy")).alias("latest")
    op.execute(
        images.update()
        .where(images.c.prediction_id.is_not(None))
        .values(
            top_margin=sa.select(latest.c.margin).where(latest.c.id == images.c.prediction_id).scalar_subquery(),
            top_entropy=sa.select(latest.c.entropy).where(latest.c.id == images.c.prediction_id).scalar_subquery(),
        )
    )


def _scores(value) -> list:
    return json.loads(value) if isinstance(value, str) else (value or [])


def _margin_and_entropy(known: list):
    # As db.scores.margin_and_entropy (a migration must not import application code that may change).
    known = sorted(known, reverse=True)
    if not known:
        return None, None
    margin = known[0] - (known[1] if len(known) > 1 else 0.0)
    rest = max(0.0, 1.0 - sum(known))
    return margin, max(0.0, -sum(p * math.log(p) for p in known + [rest] if p > 0))


def downgrade() -> None:
    for name in QUEUE:
        op.drop_index(name, table_name="images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("top_entropy")
        batch.drop_column("top_margin")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("entropy")
        batch.drop_column("margin")
        batch.drop_column("all_scores")
    op.drop_table("score_layouts")
