"""Catalog v10: the fitted parameters of the collections' generated functions, out of their bodies (which every role
can read), in pgembed.fitted_parameters, visible to the roles that may use the collection's table.

Revision ID: 0010_fitted
Revises: 0009_statements
Create Date: 2026-12-03
"""

from pgembed.db.functions import run_migration_file

revision = "0010_fitted"
down_revision = "0009_statements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0010_fitted.up.sql")


def downgrade() -> None:
    run_migration_file("0010_fitted.down.sql")
