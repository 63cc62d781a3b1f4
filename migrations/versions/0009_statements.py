"""Catalog v9: pgembed._search_statements returns the codec version its index statement reads.

Revision ID: 0009_statements
Revises: 0008_privileges
Create Date: 2026-12-03
"""

from pgembed.db.functions import run_migration_file

revision = "0009_statements"
down_revision = "0008_privileges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0009_statements.up.sql")


def downgrade() -> None:
    run_migration_file("0009_statements.down.sql")
