"""Catalog v8: each role sees the catalog rows (collections, codecs and their parameters, indexes, tuning) of
the tables it may read, and no others.

Revision ID: 0008_privileges
Revises: 0007_placement
Create Date: 2026-12-02
"""

from pgembed.db.functions import run_migration_file

revision = "0008_privileges"
down_revision = "0007_placement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0008_privileges.up.sql")


def downgrade() -> None:
    run_migration_file("0008_privileges.down.sql")
