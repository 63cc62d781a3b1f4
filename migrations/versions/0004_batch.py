"""Catalog v4: pgembed.search_batch() in SQL. It lives in sql/functions/search.sql since 0005; this revision
keeps its place in the history of databases migrated before.

Revision ID: 0004_batch
Revises: 0003_search
Create Date: 2026-11-22
"""

revision = "0004_batch"
down_revision = "0003_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
