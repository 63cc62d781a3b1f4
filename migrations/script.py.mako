"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

# Tables and data changes: sql/migrations/<revision>.up.sql / .down.sql. A function changed in
# sql/functions/<file>.sql needs no migration (migrate() re-applies changed files); one dropped or whose
# signature changes does: DROP it here. A data change that needs a changed function at once:
# apply_functions_in_migration(("<file>",)) first.
from pgembed.db.functions import apply_functions_in_migration, run_migration_file  # noqa: F401

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    run_migration_file("${up_revision}.up.sql")


def downgrade() -> None:
    run_migration_file("${up_revision}.down.sql")
