"""Catalog v3: hybrid search — the filter language in SQL, tuning results, pgembed.search().

Revision ID: 0003_search
Revises: 0002_codecs
Create Date: 2026-11-22
"""

from pgembed.sqlfiles import run_sql_file

revision = "0003_search"
down_revision = "0002_codecs"
branch_labels = None
depends_on = None

# The filter language and the search functions live in separate files: each has one reason to change.
UP = ("0003_filters.up.sql", "0003_search.up.sql")


def upgrade() -> None:
    for name in UP:
        run_sql_file(name)


def downgrade() -> None:
    for name in reversed(UP):
        run_sql_file(name.replace(".up.", ".down."))
