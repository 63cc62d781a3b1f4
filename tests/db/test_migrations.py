"""pgembed's catalog under Alembic: up, down, up again, idempotent, and never in the application's way."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest
from alembic import command
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, pool

import pgembed
from pgembed.db import functions, migrate
from pgembed.errors import CatalogError

CATALOG_TABLES = {"collections", "codecs", "indexes", "tuning", "function_files", "kernel_choice",
                  "fitted_parameters", "text_search", "relevance_models"}


def catalog_tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgembed'"
    ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade_and_second_run_is_a_no_op(bare_dsn: str) -> None:
    with psycopg.connect(bare_dsn, autocommit=True) as conn:
        # The application's own Alembic history must survive pgembed's migrations untouched.
        conn.execute("CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO public.alembic_version VALUES ('app_rev_42')")

        assert migrate.current_revision(bare_dsn) is None
        migrate.upgrade(bare_dsn)
        assert migrate.current_revision(bare_dsn) == migrate.head_revision()
        assert catalog_tables(conn) == CATALOG_TABLES
        conn.execute("INSERT INTO pgembed.collections (name, table_schema, table_name, key_column, vector_column,"
                     " dim, metric) VALUES ('keep', 'public', 't', 'id', 'v', 3, 'l2')")

        migrate.upgrade(bare_dsn)  # again: nothing happens, nothing is lost
        assert migrate.current_revision(bare_dsn) == migrate.head_revision()
        assert conn.execute("SELECT count(*) FROM pgembed.collections").fetchone() == (1,)

        migrate.downgrade(bare_dsn, "base")
        assert migrate.current_revision(bare_dsn) is None
        assert catalog_tables(conn) == set()
        assert conn.execute("SELECT to_regprocedure('pgembed.encode_binary(vector, vector)')").fetchone() == (None,)

        migrate.upgrade(bare_dsn)
        assert catalog_tables(conn) == CATALOG_TABLES
        assert conn.execute("SELECT version_num FROM public.alembic_version").fetchall() == [("app_rev_42",)]


def test_connect_to_a_server_does_not_migrate_unless_asked(bare_dsn: str) -> None:
    with pgembed.connect(bare_dsn) as db:  # a DSN: the schema is the user's to schedule
        assert db.catalog_revision() is None
        with pytest.raises(CatalogError, match="pgembed migrate"):
            db.collections()
        db.migrate()
        assert db.catalog_revision() == migrate.head_revision()
        assert db.collections() == []


def test_concurrent_migrations_serialise(bare_dsn: str) -> None:
    """Processes migrating at once (several app servers starting together): all succeed, one applies."""
    code = "import sys; from pgembed.db import migrate; migrate.upgrade(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, bare_dsn], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()


def test_threads_in_one_process_can_migrate_at_once(bare_dsn: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as executor:
        list(executor.map(lambda _: migrate.upgrade(bare_dsn), range(3)))
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()


def test_application_env_py_can_run_pgembed_migrations(bare_dsn: str) -> None:
    """What the README shows for applications with their own Alembic setup."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(bare_dsn),
                           poolclass=pool.NullPool)
    with engine.begin() as connection:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "pgembed@head")
    assert migrate.current_revision(bare_dsn) == migrate.head_revision()


def test_function_files_are_applied_when_their_text_changes(dsn: str) -> None:
    """A function file whose text differs from what the database recorded makes the catalog not current, and the
    next migrate() re-applies that file alone: a planner threshold is one file's change, no migration."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        recorded = dict(conn.execute("SELECT name, sha256 FROM pgembed.function_files").fetchall())
        assert set(recorded) == set(functions.FUNCTION_FILES)
        assert functions.stale_functions(conn) == []
        # As if planner.sql had changed since it was applied: the recorded text is not this pgembed's.
        conn.execute("UPDATE pgembed.function_files SET sha256 = 'older' WHERE name = 'planner'")
        conn.execute("CREATE OR REPLACE FUNCTION pgembed.planner_limits(OUT exact_max_rows double precision, "
                     "OUT min_ef_search integer, OUT max_ef_search integer, OUT min_scan_tuples bigint, "
                     "OUT max_scan_tuples bigint, OUT scan_safety double precision, OUT max_candidates integer, "
                     "OUT max_oversample double precision) LANGUAGE sql IMMUTABLE AS "
                     "$$ SELECT 1::float8, 40, 1000, 20000::bigint, 2147483647::bigint, 4::float8, 10000, "
                     "1000::float8 $$")
        with pgembed.connect(dsn) as db:
            with pytest.raises(CatalogError, match=r"functions in this database are not this pgembed's \(planner\)"):
                db.collections()
            db.migrate()
            assert db.collections() == []
        assert conn.execute("SELECT exact_max_rows FROM pgembed.planner_limits()").fetchone() == (10000,)
        assert functions.stale_functions(conn) == []


def test_downgrading_to_base_refuses_to_drop_the_users_objects(dsn: str) -> None:
    """A view over pgembed.search() or an index on an encoder's result is the user's: the downgrade stops and
    names them, leaving everything in place."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        conn.execute("CREATE INDEX t_f16 ON t (pgembed.encode_float16(v))")
        conn.execute("CREATE VIEW near AS SELECT * FROM pgembed.search('nothing', '[1,2,3]'::vector)")
        with pytest.raises(Exception, match="these use (its functions|them): .*(index t_f16|view near).*"):
            migrate.downgrade(dsn, "base")
        assert migrate.current_revision(dsn) == migrate.head_revision()
        assert conn.execute("SELECT to_regclass('t_f16') IS NOT NULL, to_regclass('near') IS NOT NULL").fetchone() \
            == (True, True)
        conn.execute("DROP VIEW near")
        conn.execute("DROP INDEX t_f16")
        migrate.downgrade(dsn, "base")
        assert migrate.current_revision(dsn) is None
        assert conn.execute("SELECT to_regclass('t') IS NOT NULL").fetchone() == (True,)  # the user's table stays


def test_a_role_that_may_only_read_uses_the_library(db: pgembed.Database, dsn: str) -> None:
    """Every entry point checks that the catalog is current; a role with SELECT on one table may do that."""
    import uuid

    db.create_collection("readable", 3).ingest([1, 2], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    role = f"pgembed_reader_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        db.execute(sql.SQL("GRANT USAGE ON SCHEMA pgembed TO {r}; GRANT SELECT ON readable TO {r}").format(
            r=sql.Identifier(role)))
        with pgembed.connect(make_conninfo(dsn, user=role)) as reader:
            hits = reader.collection("readable").search([1.0, 0.1, 0.0], 1)
            assert hits.ids.tolist() == [1]
    finally:
        db.execute(sql.SQL("REVOKE ALL ON readable FROM {r}; REVOKE USAGE ON SCHEMA pgembed FROM {r}").format(
            r=sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


SIGNATURES_0007_REPLACED = {
    "pgembed.search(text,vector,integer,jsonb,double precision,text,integer,double precision,text)",
    "pgembed.search_plan(text,vector,integer,jsonb,double precision,text,integer,double precision,text)",
    "pgembed._prepare_search(integer,jsonb,text,integer,double precision,text,integer,double precision,text,text[],"
    "double precision,text)",
    "pgembed._plan(integer,integer,double precision,text,integer,double precision,text,jsonb,boolean,"
    "double precision,double precision,text)",
    "pgembed.check_search_params(integer,double precision,integer,double precision,text)",
}


@pytest.mark.parametrize(("fixture", "revision"), [("catalog_0004.sql.gz", "0004_batch"),
                                                   ("catalog_0005.sql.gz", "0005_functions")])
def test_a_catalog_an_earlier_pgembed_made_upgrades(bare_dsn: str, fixture: str, revision: str) -> None:
    """tests/db/fixtures/ holds databases earlier pgembeds made (README there): at revision 0004, its functions
    copies inside migrations; at 0005, functions as files without the kernels (one of them since changed its
    result columns). Upgraded, every function is this pgembed's, the collection's trigger and query encoder
    are regenerated, and search works through its full index, its partial index and its tuning."""
    import gzip
    from pathlib import Path

    import numpy as np

    dump = gzip.decompress((Path(__file__).parent / "fixtures" / fixture).read_bytes()).decode()
    with psycopg.connect(bare_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute(sql.SQL(dump))  # type: ignore[arg-type]  (the dump empties this session's search_path)
    assert migrate.current_revision(bare_dsn) == revision
    with psycopg.connect(bare_dsn) as conn:
        before = {r[0] for r in conn.execute("SELECT oid::regprocedure::text FROM pg_proc "
                                              "WHERE pronamespace = 'pgembed'::regnamespace").fetchall()}
    with pgembed.connect(bare_dsn, migrate=True) as db:
        assert db.catalog_revision() == migrate.head_revision() and functions.stale_functions(db.conn) == []
        after = {r[0] for r in db.execute("SELECT oid::regprocedure::text FROM pg_proc "
                                          "WHERE pronamespace = 'pgembed'::regnamespace").fetchall()}
        # Replaced in place, none left behind under an old signature; 0007 gave these their stages' arguments.
        assert before - SIGNATURES_0007_REPLACED <= after and not SIGNATURES_0007_REPLACED & after
        docs = db.collection("docs")
        keys, x = docs.sample_rows(300)
        by_key = dict(zip(keys, x, strict=True))
        q = by_key[0]
        exact = docs.search(q, 5, plan="exact")
        assert exact.ids[0] == 0
        assert docs.search(q, 5, oversample=30).plan.kind == "index"
        news = docs.search(q, 5, where={"category": "news"}, plan="index", oversample=10)
        assert news.plan.index == "docs_embedding_bq_hnsw_8708dc9c" and len(news) == 5
        assert docs.search(q, 5, recall=0.8).plan.tuned
        row = db.execute("SELECT count(*) FROM pgembed.search('docs', %s::vector, 5)",
                         (json.dumps(q.tolist()),)).fetchone()
        assert row == (5,)
        # The regenerated trigger encodes a new row as the numpy codecs do.
        v = np.full(8, 0.3, dtype=np.float32)
        db.execute("INSERT INTO docs (id, embedding, category) VALUES (1000, %s::vector, 'x')",
                   (json.dumps(v.tolist()),))
        stored = db.value("SELECT embedding_bq::text FROM docs WHERE id = 1000")
        assert stored == "".join(str(b) for b in np.unpackbits(docs.codec("bq").encode(v))[:8])


def test_downgrading_the_kernels_keeps_the_collections_generated_functions(dsn: str) -> None:
    """0006's downgrade removes the twins and the kernels, but not what the collections' generated functions
    call: pgembed's encoders stay (as calls of the twins, until the older pgembed's migrate() writes its own), so
    the query encoders an older pgembed reuses are still there; upgraded again, search works."""
    import numpy as np

    from tests.helpers import unit_vectors

    with pgembed.connect(dsn) as db:
        docs = db.create_collection("docs", 8)
        docs.ingest(np.arange(50), unit_vectors(50, 8, seed=1))
        docs.add_codec("bq", "bq")
        encoder = f"pgembed.query_code_{docs.info.id}(text,vector)"
    migrate.downgrade(dsn, "0005_functions")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regprocedure(%s) IS NOT NULL, to_regprocedure('pgembed.encode_binary(vector,"
                            "vector)') IS NOT NULL, to_regnamespace('pgembed_twins') IS NULL", [encoder]).fetchone() \
            == (True, True, True)
    with pgembed.connect(dsn, migrate=True) as db:
        docs = db.collection("docs")
        assert docs.search(unit_vectors(50, 8, seed=1)[3], 3, plan="index").ids[0] == 3


def test_downgrading_below_0007_refuses_while_codes_live_in_a_companion(dsn: str) -> None:
    """The older catalog cannot say where a companion collection's codes are: the downgrade stops, naming it."""
    with pgembed.connect(dsn) as db:
        db.create_collection("beside", 3, placement="companion")
    with pytest.raises(Exception, match="collection\\(s\\) 'beside' keep their codes in a companion table"):
        migrate.downgrade(dsn, "0006_kernels")
    assert migrate.current_revision(dsn) == migrate.head_revision()
    with pgembed.connect(dsn) as db:
        db.collection("beside").drop(drop_table=True)
    migrate.downgrade(dsn, "0006_kernels")
    migrate.upgrade(dsn)
    assert migrate.current_revision(dsn) == migrate.head_revision()
