"""Catalog v2: SQL encoders and decoders of every codec family.

Revision ID: 0002_codecs
Revises: 0001_catalog
Create Date: 2026-11-22
"""

from pgembed.sqlfiles import run_sql_file

revision = "0002_codecs"
down_revision = "0001_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_codecs.up.sql")


def downgrade() -> None:
    run_sql_file("0002_codecs.down.sql")
