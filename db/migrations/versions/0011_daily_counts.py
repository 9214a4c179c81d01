"""Per-day counts of photos, predictions, current decisions and reviews, kept by triggers; backfilled here.

The statistics' totals over a date range counted up to a million rows per query; on PostgreSQL,
which has no cheap COUNT(*), the summary over 89 of 90 days took about 1 s at a million photos.
With these counts a range's whole days are a sum over a few hundred rows, and only its partial
first and last days are counted from the tables (db/stats.py).

The counts are kept by the database itself, in the transaction of each write, whatever makes it
(the ORM, a bulk load, a hand-written UPDATE): on PostgreSQL by statement-level triggers over the
statement's transition tables (one upsert per day and kind per statement, none when nothing
counted changed), on SQLite by row-level triggers. A later migration that rebuilds `images`,
`predictions` or `reviews` on SQLite (batch_alter_table's copy-and-move) drops their triggers and
must create them again with `create_triggers()` below; tests/test_db_stats.py checks the counts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# What each table counts: (kind, day column, reviewer, action, condition), per row.
COUNTED = {
    "images": [
        ("added", "added_at", "''", "''", None),
        ("added_reviewed", "added_at", "''", "''", "current_review_id IS NOT NULL"),
        ("current", "reviewed_at", "''", "current_action", "current_action IS NOT NULL AND reviewed_at IS NOT NULL"),
    ],
    "predictions": [("predicted", "created_at", "''", "''", None)],
    "reviews": [("review", "created_at", "reviewer", "action", None)],
}
EDGE_INDICES = [
    ("images", "ix_images_reviewed_at", ["reviewed_at", "current_action"]),
    ("reviews", "ix_reviews_created_at", ["created_at", "reviewer", "action"]),
]
COLUMNS = {
    "images": ["added_at", "current_review_id", "current_action", "reviewed_at"],
    "predictions": ["created_at"],
    "reviews": ["created_at", "reviewer", "action"],
}


def upgrade() -> None:
    op.create_table(
        "daily_counts",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "reviewer", "action", "day", name="pk_daily_counts"),
        sqlite_with_rowid=False,
    )
    # The partial first and last days of a range are counted from these, seeking the day's rows.
    for table, name, columns in EDGE_INDICES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    dialect = op.get_bind().dialect.name
    for table in COUNTED:
        op.execute(_upsert(dialect, table, [(table, 1)]))  # backfill: the rows there now
    create_triggers(dialect)


def downgrade() -> None:
    for table, name, columns in EDGE_INDICES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns[:1])
    dialect = op.get_bind().dialect.name
    for table in COUNTED:
        for event in ("insert", "update", "delete"):
            name = f"daily_counts_{table}_{event}"
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect == "postgresql" else ""))
            if dialect == "postgresql":
                op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("daily_counts")


def create_triggers(dialect: str) -> None:
    """The triggers that keep daily_counts: AFTER INSERT, UPDATE and DELETE on each counted table."""
    for table in COUNTED:
        for event, sources in (
            ("insert", [("new_rows", 1)]),
            ("update", [("old_rows", -1), ("new_rows", 1)]),
            ("delete", [("old_rows", -1)]),
        ):
            name = f"daily_counts_{table}_{event}"
            if dialect == "postgresql":
                transitions = " ".join(f"{'OLD' if rel == 'old_rows' else 'NEW'} TABLE AS {rel}" for rel, _ in sources)
                op.execute(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"{_upsert(dialect, table, sources)}; RETURN NULL; END $$"
                )
                op.execute(
                    f"CREATE TRIGGER {name} AFTER {event.upper()} ON {table} REFERENCING {transitions} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
                )
            else:
                # Row triggers: NEW and OLD as one-row relations, so the same upsert serves both dialects.
                rows = [
                    (
                        "(SELECT "
                        + ", ".join(f"{'OLD' if rel == 'old_rows' else 'NEW'}.{c} AS {c}" for c in COLUMNS[table])
                        + f") AS {rel}",
                        sign,
                    )
                    for rel, sign in sources
                ]
                columns = f" OF {', '.join(COLUMNS[table])}" if event == "update" else ""
                op.execute(
                    f"CREATE TRIGGER {name} AFTER {event.upper()}{columns} ON {table} FOR EACH ROW BEGIN "
                    f"{_upsert(dialect, table, rows)}; END"
                )


def _upsert(dialect: str, table: str, sources: list[tuple[str, int]]) -> str:
    """INSERT ... ON CONFLICT adding each source's rows (times its sign) to daily_counts; net zeros skipped."""
    day = "date({})" if dialect == "sqlite" else "CAST({} AS date)"
    parts = []
    for relation, sign in sources:
        for kind, column, reviewer, action, condition in COUNTED[table]:
            parts.append(
                f"SELECT {day.format(column)} AS day, '{kind}' AS kind, {reviewer} AS reviewer, "
                f"{action} AS action, {sign} AS n FROM {relation}" + (f" WHERE {condition}" if condition else "")
            )
    # In key order: concurrent writers lock counter rows in the same order.
    return (
        "INSERT INTO daily_counts (day, kind, reviewer, action, n) "
        f"SELECT day, kind, reviewer, action, SUM(n) FROM ({' UNION ALL '.join(parts)}) AS delta "
        "GROUP BY kind, reviewer, action, day HAVING SUM(n) <> 0 ORDER BY kind, reviewer, action, day "
        "ON CONFLICT (kind, reviewer, action, day) DO UPDATE SET n = daily_counts.n + excluded.n"
    )
