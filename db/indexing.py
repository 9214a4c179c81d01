"""Steering SQLite's planner to the index a query was written for, in SQL that other backends read plainly."""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class unseekable(FunctionElement):
    """SQL: a column's value that SQLite may not seek an index by (`+column`); other backends get the column.

    Without ANALYZE statistics, which a deployed database rarely has, SQLite takes any range or
    equality on an indexed column to be selective, and would seek rows by it, read each from the
    table and sort them. Hiding such a term leaves the index that is already in GROUP BY or ORDER
    BY order and holds the column, with the term checked on each index entry instead.
    """

    name = "unseekable"
    inherit_cache = True

    def __init__(self, column):
        super().__init__(column)
        self.type = column.type  # so compared values are bound as the column's type


@compiles(unseekable)
def _unseekable(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(unseekable, "sqlite")
def _unseekable_sqlite(element, compiler, **kw):
    # SQLite's documented way to keep a term from driving an index: a unary plus (a no-op on any value).
    return f"+{compiler.process(element.clauses, **kw)}"
