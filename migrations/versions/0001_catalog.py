"""Catalog v1: collections, codecs, indexes.

Revision ID: 0001_catalog
Revises:
Create Date: 2026-11-22
"""

from pgembed.db.functions import run_migration_file

revision = "0001_catalog"
down_revision = None
branch_labels = ("pgembed",)
depends_on = None


def upgrade() -> None:
    run_migration_file("0001_catalog.up.sql")


def downgrade() -> None:
    run_migration_file("0001_catalog.down.sql")  # every pgembed function goes too
