"""Catalog v11: full-text search of a collection's text column (pgembed.text_search), fused with the vector search
by pgembed.search(..., text => ...) and Collection.search(q, text=...).

Revision ID: 0011_text
Revises: 0010_fitted
Create Date: 2026-12-03
"""

from pgembed.db.functions import run_migration_file

revision = "0011_text"
down_revision = "0010_fitted"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0011_text.up.sql")


def downgrade() -> None:
    run_migration_file("0011_text.down.sql")
