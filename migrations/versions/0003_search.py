"""Catalog v3: hybrid search's tables: tuning results, partial indexes' predicates. (Its functions live in
sql/functions/ since 0005.)

Revision ID: 0003_search
Revises: 0002_codecs
Create Date: 2026-11-22
"""

from pgembed.db.functions import run_migration_file

revision = "0003_search"
down_revision = "0002_codecs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0003_search.up.sql")


def downgrade() -> None:
    run_migration_file("0003_search.down.sql")
