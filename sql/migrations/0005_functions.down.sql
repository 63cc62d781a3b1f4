-- Undo 0005. The functions stay as they are: they are not versioned (downgrading to base removes them all).
REVOKE SELECT ON pgembed.alembic_version FROM PUBLIC;
DROP TABLE pgembed.function_files;
