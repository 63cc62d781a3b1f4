"""Catalog v5: every function from the files of sql/functions/ (re-appliable, CREATE OR REPLACE), the one
planner, filter compiler and statement builder that Python's search() now asks.

A downgrade below this revision leaves the functions in place: they are not versioned (downgrading to base
removes them all).

Revision ID: 0005_functions
Revises: 0004_batch
Create Date: 2026-12-01
"""

from pgembed.db.functions import FUNCTION_FILES, apply_functions_in_migration

revision = "0005_functions"
down_revision = "0004_batch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_functions_in_migration(FUNCTION_FILES)


def downgrade() -> None:
    pass
