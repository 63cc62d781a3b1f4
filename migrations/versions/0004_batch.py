"""Catalog v4: pgembed.search_batch() in SQL.

Revision ID: 0004_batch
Revises: 0003_search
Create Date: 2026-11-22
"""

from pgembed.sqlfiles import run_sql_file

revision = "0004_batch"
down_revision = "0003_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0004_batch.up.sql")


def downgrade() -> None:
    run_sql_file("0004_batch.down.sql")
