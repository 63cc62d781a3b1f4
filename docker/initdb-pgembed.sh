#!/bin/sh
# First start of the container: enable pgvector and migrate pgembed's catalog in $POSTGRES_DB.
set -e
/opt/pgembed/venv/bin/pgembed migrate --dsn "postgresql://${POSTGRES_USER:-postgres}@/${POSTGRES_DB:-postgres}?host=/var/run/postgresql"
