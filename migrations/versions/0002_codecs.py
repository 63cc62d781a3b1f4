"""Catalog v2: the codecs' SQL encoders. They live in sql/functions/codecs.sql since 0005; this revision
keeps its place in the history of databases migrated before.

Revision ID: 0002_codecs
Revises: 0001_catalog
Create Date: 2026-11-22
"""

revision = "0002_codecs"
down_revision = "0001_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
