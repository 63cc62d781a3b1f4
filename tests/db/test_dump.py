"""A collection through pg_dump and pg_restore: its catalog rows, fitted parameters and generated functions
come back working, for its owner and for roles with rights on its table."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgembed
from pgembed.server import program_path
from tests.helpers import unit_vectors, vector_text

DIM = 16


def codes_of(conn: psycopg.Connection, key: int) -> tuple[str, ...]:
    return conn.execute("SELECT embedding_bq2::text, embedding_sq8::text FROM docs WHERE id = %s", (key,)).fetchone()


def test_a_collection_survives_dump_and_restore(dsn: str, sql_conn: psycopg.Connection,
                                                tmp_path: Path) -> None:
    x = unit_vectors(300, DIM, seed=3)
    with pgembed.connect(dsn) as db:
        docs = db.create_collection("docs", DIM)
        docs.ingest(np.arange(300), x)
        docs.add_codec("bq2", "bq2")
        docs.add_codec("sq8", "sq8")
        docs.create_index("bq2")
    role = f"app_{uuid.uuid4().hex[:8]}"
    sql_conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    sql_conn.execute(sql.SQL("GRANT SELECT, INSERT ON docs TO {}").format(sql.Identifier(role)))
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1000, %s::vector)", (vector_text(x[7]),))
    before = codes_of(sql_conn, 1000)
    restored = f"pgembed_restored_{uuid.uuid4().hex[:8]}"
    params = conninfo_to_dict(dsn)
    connection = ["-h", str(params["host"]), "-p", str(params["port"]), "-U", str(params["user"])]
    dump = tmp_path / "docs.dump"
    try:
        subprocess.run([str(program_path("pg_dump")), *connection, "-Fc", "-f", str(dump), str(params["dbname"])],
                       check=True, capture_output=True)
        sql_conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(restored)))
        subprocess.run([str(program_path("pg_restore")), *connection, "--exit-on-error", "-d", restored, str(dump)],
                       check=True, capture_output=True)
        target = make_conninfo(dsn, dbname=restored)
        with psycopg.connect(make_conninfo(target, options=f"-c role={role}"), autocommit=True) as app:
            app.execute("INSERT INTO docs (id, embedding) VALUES (1001, %s::vector)", (vector_text(x[7]),))
            assert codes_of(app, 1001) == codes_of(app, 1000) == before
            rows = app.execute("SELECT id FROM pgembed.search('docs', %s::vector, 5)", (vector_text(x[7]),)).fetchall()
            assert int(rows[0][0]) in (7, 1000, 1001)
        with pgembed.connect(target) as db:
            assert db.collection("docs").search(x[12], 3, plan="index", codec="bq2").ids[0] == 12
    finally:
        sql_conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored)))
        sql_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        sql_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
