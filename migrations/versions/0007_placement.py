"""Catalog v7: where a collection's codes live (in its own table, or in a companion table pgembed keeps), each
codec's distance estimator, and search stages (a compact re-rank tier, the exact re-rank optional).

Revision ID: 0007_placement
Revises: 0006_kernels
Create Date: 2026-12-02
"""

from pgembed.db.functions import run_migration_file

revision = "0007_placement"
down_revision = "0006_kernels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0007_placement.up.sql")  # the functions of the new signatures follow: env.py syncs them


def downgrade() -> None:
    run_migration_file("0007_placement.down.sql")
