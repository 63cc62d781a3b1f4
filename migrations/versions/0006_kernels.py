"""Catalog v6: a schema for the SQL twins of pgembed's C kernels (pgembed_twins); pgembed's encoders and
estimators call the kernels where the extension pgembed_kernels is installed, the twins elsewhere.

Revision ID: 0006_kernels
Revises: 0005_functions
Create Date: 2026-12-02
"""

from pgembed.db.functions import run_migration_file

revision = "0006_kernels"
down_revision = "0005_functions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_migration_file("0006_kernels.up.sql")  # the twins follow: env.py syncs the function files afterwards


def downgrade() -> None:
    run_migration_file("0006_kernels.down.sql")
