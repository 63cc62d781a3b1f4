"""Catalog v5: the functions as files (sql/functions/, CREATE OR REPLACE), re-applied by every `migrate()` whose
files changed since they were last applied (pgembed.function_files records them); the one filter compiler,
planner and statement builder that Python's search() asks.

Revision ID: 0005_functions
Revises: 0004_batch
Create Date: 2026-12-01
"""

from pgembed.db.functions import run_migration_file

revision = "0005_functions"
down_revision = "0004_batch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0005_functions.up.sql")  # the functions follow: env.py syncs them after the migrations


def downgrade() -> None:
    run_migration_file("0005_functions.down.sql")
