"""Security on every path: a caller's search_path never decides which operator, function or type pgembed's code
runs (trigger, ingest, backfill, search in Python and in SQL, batches); tenants under row-level security see only
their rows, through every face; the catalog shows a role only what its tables allow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgembed
from pgembed.errors import InvalidInputError, SchemaError
from tests.helpers import categorised_docs, unit_vectors, vector_text

DIM = 16
ROWS = 400

# Objects of "mallory" that shadow pgvector's (and pg_catalog's vector arithmetic) for anyone whose search_path
# puts her schema first. Each records that it ran, with the rights of whoever called it.
HIJACK = """
CREATE SCHEMA mallory;
CREATE TABLE mallory.calls (what text);
GRANT USAGE ON SCHEMA mallory TO PUBLIC;
GRANT INSERT, SELECT ON mallory.calls TO PUBLIC;
CREATE FUNCTION mallory.note(what text) RETURNS void LANGUAGE sql AS $$ INSERT INTO mallory.calls VALUES (what) $$;
CREATE FUNCTION mallory.cos(a public.vector, b public.vector) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('<=>'); RETURN public.cosine_distance(a, b); END $$;
CREATE OPERATOR mallory.<=> (LEFTARG = public.vector, RIGHTARG = public.vector, FUNCTION = mallory.cos);
CREATE FUNCTION mallory.ip(a public.vector, b public.vector) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('<#>'); RETURN public.vector_negative_inner_product(a, b); END $$;
CREATE OPERATOR mallory.<#> (LEFTARG = public.vector, RIGHTARG = public.vector, FUNCTION = mallory.ip);
CREATE FUNCTION mallory.l2(a public.vector, b public.vector) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('<->'); RETURN public.l2_distance(a, b); END $$;
CREATE OPERATOR mallory.<-> (LEFTARG = public.vector, RIGHTARG = public.vector, FUNCTION = mallory.l2);
CREATE FUNCTION mallory.hcos(a public.halfvec, b public.halfvec) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('halfvec <=>'); RETURN public.cosine_distance(a, b); END $$;
CREATE OPERATOR mallory.<=> (LEFTARG = public.halfvec, RIGHTARG = public.halfvec, FUNCTION = mallory.hcos);
CREATE FUNCTION mallory.ham(a bit, b bit) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('<~>'); RETURN public.hamming_distance(a, b); END $$;
CREATE OPERATOR mallory.<~> (LEFTARG = bit, RIGHTARG = bit, FUNCTION = mallory.ham);
CREATE FUNCTION mallory.sub(a public.vector, b public.vector) RETURNS public.vector LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('-'); RETURN public.vector_sub(a, b); END $$;
CREATE OPERATOR mallory.- (LEFTARG = public.vector, RIGHTARG = public.vector, FUNCTION = mallory.sub);
CREATE FUNCTION mallory.binary_quantize(v public.vector) RETURNS bit LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('binary_quantize'); RETURN public.binary_quantize(v); END $$;
CREATE FUNCTION mallory.vector_norm(v public.vector) RETURNS float8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('vector_norm'); RETURN public.vector_norm(v); END $$;
CREATE FUNCTION mallory.l2_normalize(v public.vector) RETURNS public.vector LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('l2_normalize'); RETURN public.l2_normalize(v); END $$;
"""

CODECS = {"bq": "bq", "bq2": "bq2", "sq8": "sq8", "f16": "f16", "pq": "pq4", "rabitq": "rabitq", "mrl": "mrl8",
          "pca": "pca8"}


@pytest.fixture
def hijacked_dsn(dsn: str, sql_conn: psycopg.Connection) -> str:
    """The test's database with mallory's objects, and a DSN whose search_path puts them first."""
    sql_conn.execute(HIJACK)
    return make_conninfo(dsn, options="-c search_path=mallory,public")


def calls(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT what FROM mallory.calls").fetchall()]


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "twins"])
@pytest.mark.parametrize("placement", ["table", "companion"])
def test_no_search_path_hijack_on_any_path(hijacked_dsn: str, sql_conn: psycopg.Connection, placement: str,
                                           kernels: bool) -> None:
    x = unit_vectors(ROWS, DIM, seed=1)
    with pgembed.connect(hijacked_dsn) as db:
        assert db.conn.execute("SHOW search_path").fetchone()[0] == "mallory,public"
        db.use_kernels(kernels)
        docs = db.create_collection("docs", DIM, attrs={"cat": "text"}, placement=placement)
        docs.ingest(np.arange(ROWS), x, {"cat": ["a" if i % 3 else "b" for i in range(ROWS)]})
        for name, spec in CODECS.items():
            docs.add_codec(name, spec)
        docs.fit()
        docs.create_index("bq2")
        docs.create_index("f16")
        with psycopg.connect(hijacked_dsn, autocommit=True) as app:  # another application, its own SQL
            app.execute("INSERT INTO docs (id, embedding, cat) VALUES (%s, %s, 'a')", (ROWS, vector_text(x[0])))
            app.execute("UPDATE docs SET embedding = %s WHERE id = 1", (vector_text(x[2]),))
            for plan in ("exact", "index"):
                app.execute("SELECT * FROM pgembed.search('docs', %s, 5, plan => %s)", (vector_text(x[3]), plan))
            app.execute("SELECT * FROM pgembed.search('docs', %s, 5, plan => 'index', refine => 'sq8')",
                        (vector_text(x[3]),))
            app.execute("SELECT * FROM pgembed.search_batch('docs', ARRAY[%s, %s]::vector[], 5)",
                        (vector_text(x[4]), vector_text(x[5])))
            app.execute("SELECT * FROM pgembed.scan_topk('docs', ARRAY[%s]::vector[], 5, '{\"cat\": \"b\"}')",
                        (vector_text(x[4]),))
            app.execute("SELECT pgembed.query_table('docs', 'pq', %s)", (vector_text(x[4]),))
        for params in ({"plan": "exact"}, {"plan": "index", "codec": "bq2"}, {"plan": "index", "codec": "f16"},
                       {"plan": "index", "codec": "bq2", "refine": "sq8"},
                       {"plan": "index", "codec": "bq2", "refine": "pq", "rerank": False}):
            assert len(docs.search(x[6], 5, where={"cat": "b"}, **params)) == 5
        docs.search_batch(x[:20], 5, where=[{"cat": "a"}, None] * 10)
        docs.backfill()
        docs.drop_codec("pca")
    assert calls(sql_conn) == []


MALLORY_EQUALS = """
CREATE FUNCTION mallory.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('text ='); RETURN pg_catalog.texteq(a, b); END $$;
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
CREATE FUNCTION mallory.int4eq(a integer, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM mallory.note('integer ='); RETURN pg_catalog.int4eq(a, b); END $$;
CREATE OPERATOR mallory.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = mallory.int4eq);
"""


def test_a_search_path_that_puts_a_schema_before_pg_catalog_is_refused(dsn: str, sql_conn: psycopg.Connection
                                                                       ) -> None:
    """Named after mallory, pg_catalog would no longer be searched first: her = would run in pgembed's
    statements (the catalog's lookups, the filter). Python refuses such a session before any statement; the SQL
    functions run under their pinned path."""
    sql_conn.execute(HIJACK)
    sql_conn.execute(MALLORY_EQUALS)
    x = unit_vectors(100, DIM, seed=1)
    with pgembed.connect(dsn) as db:
        docs = db.create_collection("docs", DIM, attrs={"cat": "text"})
        docs.ingest(np.arange(100), x, {"cat": ["a" if i % 3 else "b" for i in range(100)]})
        docs.add_codec("bq2", "bq2")
    for path in ("mallory, pg_catalog, public", "public, pg_catalog"):
        with pgembed.connect(make_conninfo(dsn, options=f"-c search_path={path.replace(' ', '')}")) as db:
            with pytest.raises(InvalidInputError, match="before pg_catalog"):
                db.collection("docs").search(x[1], 5, where={"cat": "b"})
            db.conn.execute("SET search_path = public")  # and with a safe path again, it works
            assert len(db.collection("docs").search(x[1], 5, where={"cat": "b"})) == 5
    with psycopg.connect(make_conninfo(dsn, options="-c search_path=mallory,pg_catalog,public"),
                         autocommit=True) as app:
        rows = app.execute("SELECT * FROM pgembed.search('docs', %s, 5, filter => '{\"cat\": \"b\"}')",
                           (vector_text(x[1]),)).fetchall()
        assert len(rows) == 5
    assert calls(sql_conn) == []


def test_every_function_that_resolves_at_run_time_is_pinned(db: pgembed.Database, sql_conn: psycopg.Connection
                                                            ) -> None:
    docs = db.create_collection("docs", DIM)
    docs.ingest(np.arange(50), unit_vectors(50, DIM))
    docs.add_codec("bq2", "bq2")
    unpinned = sql_conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang "
        "WHERE p.pronamespace IN ('pgembed'::regnamespace, 'pgembed_twins'::regnamespace) "
        "AND l.lanname IN ('plpgsql', 'sql') AND p.prosqlbody IS NULL "
        "AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pgembed, public, pg_temp'], false)"
    ).fetchall()
    assert unpinned == []
    # the generated trigger among them
    assert sql_conn.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure",
        (f"pgembed.keep_codes_{docs.info.id}()",)).fetchone()[0] == ["search_path=pg_catalog, pgembed, public, pg_temp"]


# -- tenants under row-level security ------------------------------------------------------------------------
TENANTS = ("a", "b")


@pytest.fixture
def roles(sql_conn: psycopg.Connection) -> Iterator[dict[str, str]]:
    """Login-less roles of this test's own (roles are the server's, shared by every test database)."""
    suffix = uuid.uuid4().hex[:8]
    names = {t: f"tenant_{t}_{suffix}" for t in TENANTS} | {"app": f"app_{suffix}"}
    for name in names.values():
        sql_conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    yield names
    for name in names.values():
        sql_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        sql_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def tenant_docs(db: pgembed.Database, sql_conn: psycopg.Connection, roles: dict[str, str]) -> np.ndarray:
    """docs: ROWS rows, tenant 'a' for even ids and 'b' for odd ones, with two kinds of policy: by role
    (tenant_<t> sees its rows) and by setting (app sees the rows of current_setting('app.tenant'))."""
    x = unit_vectors(ROWS, DIM, seed=2)
    docs = db.create_collection("docs", DIM, attrs={"tenant": "text", "owner": "text"})
    docs.ingest(np.arange(ROWS), x, {"tenant": [TENANTS[i % 2] for i in range(ROWS)],
                                     "owner": [roles[TENANTS[i % 2]] for i in range(ROWS)]})
    docs.add_codec("bq2", "bq2")
    docs.create_index("bq2")
    sql_conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    sql_conn.execute("CREATE POLICY by_role ON docs USING (owner = current_user)")
    sql_conn.execute(sql.SQL("CREATE POLICY by_setting ON docs TO {} USING (tenant = current_setting('app.tenant'))")
                     .format(sql.Identifier(roles["app"])))
    for name in roles.values():
        sql_conn.execute(sql.SQL("GRANT SELECT ON docs TO {}").format(sql.Identifier(name)))
    return x


def tenant_of(ids: np.ndarray) -> set[str]:
    return {TENANTS[int(i) % 2] for i in ids.ravel() if i is not None}


@pytest.mark.parametrize("workers", [1, 3])
def test_batches_answer_from_the_tenants_rows_only(dsn: str, tenant_docs: np.ndarray, roles: dict[str, str],
                                                   workers: int) -> None:
    q = unit_vectors(20, DIM, seed=5)
    for tenant in TENANTS:
        for setup in ([sql.SQL("SET ROLE {}").format(sql.Identifier(roles[tenant]))],
                      [sql.SQL("SET ROLE {}").format(sql.Identifier(roles["app"])),
                       sql.SQL("SET app.tenant = {}").format(sql.Literal(tenant))]):
            with pgembed.connect(dsn) as db:
                for statement in setup:
                    db.conn.execute(statement)
                docs = db.collection("docs")
                for strategy in ("scan", "each"):
                    batch = docs.search_batch(q, 10, strategy=strategy, workers=workers)
                    assert batch.connections == workers  # the workers carried the role and settings
                    assert batch.counts.tolist() == [10] * 20  # k visible rows match: k rows
                    assert tenant_of(batch.ids) == {tenant}
                single = docs.search(q[0], 10)
                assert len(single) == 10 and tenant_of(single.ids) == {tenant}


def test_workers_refuse_a_view_they_cannot_carry(dsn: str, tenant_docs: np.ndarray, roles: dict[str, str],
                                                 sql_conn: psycopg.Connection) -> None:
    # A policy that reads a setting through a function of its own: not seen by pgembed, so not carried.
    sql_conn.execute("CREATE FUNCTION public.hidden_tenant() RETURNS text LANGUAGE sql STABLE "
                     "AS $$ SELECT current_setting('app.hidden', true) $$")
    sql_conn.execute("DROP POLICY by_setting ON docs")
    sql_conn.execute(sql.SQL("CREATE POLICY by_setting ON docs TO {} USING (tenant = public.hidden_tenant())")
                     .format(sql.Identifier(roles["app"])))
    with pgembed.connect(dsn) as db:
        db.conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles["app"])))
        db.conn.execute("SELECT set_config('app.hidden', 'a', false)")
        docs = db.collection("docs")
        with pytest.raises(InvalidInputError, match="sees other rows of it under its row-level"):
            docs.search_batch(unit_vectors(4, DIM), 10, workers=2)
        batch = docs.search_batch(unit_vectors(4, DIM), 10, workers=1)
        assert batch.counts.tolist() == [10] * 4 and tenant_of(batch.ids) == {"a"}


def grant_administration(conn: psycopg.Connection, role: str) -> None:
    """What the catalog's owner grants a role to make collections of its own tables (README, "Roles")."""
    r = sql.Identifier(role)
    for statement in ("GRANT CREATE ON SCHEMA public, pgembed TO {}",
                      "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgembed TO {}",
                      "GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgembed TO {}"):
        conn.execute(sql.SQL(statement).format(r))


def test_codes_are_never_filled_from_the_rows_a_policy_shows(dsn: str, sql_conn: psycopg.Connection,
                                                             roles: dict[str, str]) -> None:
    owner = roles["app"]
    grant_administration(sql_conn, owner)
    x = unit_vectors(300, DIM, seed=4)
    with pgembed.connect(dsn) as db:
        db.conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        docs = db.create_collection("docs", DIM, attrs={"tenant": "text"})
        docs.ingest(np.arange(300), x, {"tenant": [TENANTS[i % 2] for i in range(300)]})
        db.conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        db.conn.execute("ALTER TABLE docs FORCE ROW LEVEL SECURITY")
        db.conn.execute("CREATE POLICY only_a ON docs USING (tenant = 'a')")
        before = sql_conn.execute("SELECT count(*) FROM pgembed.codecs").fetchone()
        columns = sql_conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'docs'::regclass").fetchone()
        with pytest.raises(SchemaError, match="row-level security hides rows of it from role"):
            docs.add_codec("bq2", "bq2")
        assert sql_conn.execute("SELECT count(*) FROM pgembed.codecs").fetchone() == before
        assert sql_conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'docs'::regclass"
                                ).fetchone() == columns
        db.conn.execute("ALTER TABLE docs NO FORCE ROW LEVEL SECURITY")  # the owner now sees every row
        docs.add_codec("bq2", "bq2")
    assert sql_conn.execute("SELECT count(*), count(embedding_bq2) FROM docs").fetchone() == (300, 300)


# -- privileges ----------------------------------------------------------------------------------------------
def as_role(dsn: str, role: str) -> str:
    """A DSN whose every connection (pgembed's own among them) runs as `role`."""
    return make_conninfo(dsn, options=f"-c role={role}")


def test_a_reader_uses_the_library_and_a_stranger_sees_nothing(dsn: str, tenant_docs: np.ndarray,
                                                               roles: dict[str, str], sql_conn: psycopg.Connection
                                                               ) -> None:
    sql_conn.execute("ALTER TABLE docs DISABLE ROW LEVEL SECURITY")
    reader, stranger = roles["a"], roles["b"]
    sql_conn.execute(sql.SQL("REVOKE SELECT ON docs FROM {}").format(sql.Identifier(stranger)))
    with pgembed.connect(as_role(dsn, reader)) as db:
        db.migrate()  # current: nothing to do, and a reader may
        assert [c.name for c in db.collections()] == ["docs"]
        docs = db.collection("docs")
        assert len(docs.search(tenant_docs[0], 10)) == 10
        assert [c.name for c in docs.codecs()] == ["bq2"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            docs.add_codec("f16", "f16")
    with pgembed.connect(as_role(dsn, stranger)) as db:
        assert db.collections() == []
        for table in ("collections", "codecs", "indexes", "tuning"):
            assert db.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pgembed", table))
                                   ).fetchone() == (0,)
        with pytest.raises(psycopg.errors.UndefinedObject, match="no collection named"):
            db.conn.execute("SELECT * FROM pgembed.search('docs', %s)", (vector_text(tenant_docs[0]),))


FITTED_CODECS = {"bq": "bq", "bq2": "bq2", "sq8": "sq8", "osq": "osq4", "pq": "pq4", "rabitq": "rabitq",
                 "pca": "pca8"}


@pytest.mark.parametrize("placement", ["table", "companion"])
def test_fitted_parameters_are_for_the_tables_users_only(dsn: str, db: pgembed.Database, sql_conn: psycopg.Connection,
                                                         roles: dict[str, str], placement: str) -> None:
    """No function's body shows what a codec learnt from the rows (PostgreSQL shows every body to every role);
    a role that may not use the table reads none of it, and a writer that may only insert still gets its codes."""
    from pgembed.codecs import SOURCE
    from pgembed.codecs.base import codes_from_sql_text
    from pgembed.statements.encoders import digest, fitted_parameters

    x = unit_vectors(300, DIM, seed=5)
    docs = db.create_collection("docs", DIM, placement=placement)
    docs.ingest(np.arange(300), x)
    for name, spec in FITTED_CODECS.items():
        docs.add_codec(name, spec)
    writer, stranger = roles["a"], roles["b"]
    sql_conn.execute(sql.SQL("GRANT INSERT ON docs TO {}").format(sql.Identifier(writer)))
    infos = {c.name: c for c in docs.codecs()}
    parameters = []
    for name in FITTED_CODECS:
        codec = docs.codec(name)
        expressions = [codec.sql_encoder(), *(codec.sql_extra_encoder(e.suffix) for e in codec.extra_columns()),
                       codec.sql_query_table(SOURCE, docs.metric.value)]
        parameters += [(infos[name].id, p) for e in expressions if e is not None for p in fitted_parameters(e)]
    assert len(parameters) >= len(FITTED_CODECS)
    bodies = " ".join(r[0] for r in sql_conn.execute(
        "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE prokind = 'f' "
        "AND pronamespace IN ('pgembed'::regnamespace, 'pgembed_twins'::regnamespace)").fetchall())
    # The first vector of each parameter, as it would be inlined (a vector[]'s first element, integers' first 20)
    shown = [p.text.lstrip('{"')[:60] for _, p in parameters if p.text.lstrip('{"')[:60] in bodies]
    assert shown == []
    with pgembed.connect(as_role(dsn, stranger)) as as_stranger:
        assert as_stranger.conn.execute("SELECT count(*) FROM pgembed.fitted_parameters").fetchone() == (0,)
        codec_id, parameter = parameters[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not visible to role"):
            as_stranger.conn.execute("SELECT pgembed._fitted_vectors(%s, %s)", (codec_id, digest(parameter)))
    # A writer that may not read the table gets the codes the owner's row gets (in-table placement: the trigger
    # runs with the writer's rights; companion: with its owner's), and numpy's.
    v = unit_vectors(1, DIM, seed=9)[0]
    with psycopg.connect(as_role(dsn, writer), autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, embedding) VALUES (1000, %s::vector)", (vector_text(v),))
        assert conn.execute("SELECT count(*) FROM pgembed.fitted_parameters").fetchone()[0] == len(
            {(i, digest(p)) for i, p in parameters})
    sql_conn.execute("INSERT INTO docs (id, embedding) VALUES (1001, %s::vector)", (vector_text(v),))
    for name in FITTED_CODECS:
        column = infos[name].column_name
        texts = sql_conn.execute(sql.SQL("SELECT {}::text FROM {} WHERE id IN (1000, 1001) ORDER BY id").format(
            sql.Identifier(column), docs.info.codes_table)).fetchall()
        assert texts[0] == texts[1] and texts[0][0] is not None, name
        codec = docs.codec(name)
        if codec.storage not in ("vector", "halfvec"):  # float codes: tests/parity holds them to numpy's
            expected = codec.encode(v[None])
            assert np.array_equal(codes_from_sql_text(codec.storage, [texts[0][0]], expected.shape[1]), expected)


def test_a_tenant_under_row_level_security_ingests_through_its_policies(dsn: str, tenant_docs: np.ndarray,
                                                                         roles: dict[str, str],
                                                                         sql_conn: psycopg.Connection) -> None:
    # PostgreSQL refuses COPY FROM into a table whose policies apply to the role: ingest goes through an INSERT.
    tenant = roles["a"]
    sql_conn.execute(sql.SQL("GRANT INSERT ON docs TO {}").format(sql.Identifier(tenant)))
    new = unit_vectors(30, DIM, seed=9)
    with pgembed.connect(as_role(dsn, tenant)) as db:
        docs = db.collection("docs")
        assert docs.ingest(np.arange(1000, 1020), new[:20], {"tenant": ["a"] * 20, "owner": [tenant] * 20}) == 20
        with pytest.raises(InvalidInputError, match="row-level security policy"):
            docs.ingest(np.arange(2000, 2010), new[20:], {"tenant": ["b"] * 10, "owner": [roles["b"]] * 10})
        with db.transaction():  # twice in the application's transaction: the staging table does not linger
            docs.ingest([1020], new[20:21], {"tenant": ["a"], "owner": [tenant]})
            docs.ingest([1021], new[21:22], {"tenant": ["a"], "owner": [tenant]})
        assert docs.search(new[5], 1).ids[0] == 1005
    assert sql_conn.execute("SELECT count(*) FROM docs WHERE id >= 1000").fetchone() == (22,)
    assert sql_conn.execute("SELECT count(*) FROM docs WHERE id >= 1000 AND embedding_bq2 IS NULL").fetchone() == (0,)


def test_tune_and_advise_keep_to_the_tenants_rights(dsn: str, db: pgembed.Database, sql_conn: psycopg.Connection,
                                                     roles: dict[str, str]) -> None:
    categorised_docs(db, 2000, DIM)
    tenant = roles["a"]
    sql_conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    sql_conn.execute(sql.SQL("CREATE POLICY only_blog ON docs TO {} USING (category = 'blog')")
                     .format(sql.Identifier(tenant)))
    sql_conn.execute(sql.SQL("GRANT SELECT ON docs TO {}").format(sql.Identifier(tenant)))

    def catalog() -> tuple[Any, ...]:
        return tuple(sql_conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pgembed", t))
                                      ).fetchone() for t in ("tuning", "indexes")) + (
            sql_conn.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'docs'::regclass").fetchone(),)

    before = catalog()
    workload = [{"category": "blog"}] * 30 + [None] * 10
    with pgembed.connect(as_role(dsn, tenant)) as tenant_db:
        docs = tenant_db.collection("docs")
        # Knobs measured on the rows one tenant sees would be stored for every reader: refused before measuring.
        with pytest.raises(SchemaError, match="tune on public.docs: row-level security hides rows of it"):
            docs.tune(0.9, sample=20, selectivities=(1.0,))
        advice = docs.advise(workload, min_share=0.1)  # the planner's estimates: no row of anyone's
        assert [i.predicate for i in advice.indexes] == [{"category": "blog"}]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table docs"):
            docs.advise(workload, min_share=0.1, apply=True)
        assert len(docs.search(unit_vectors(1, DIM)[0], 5, where={"category": "blog"})) == 5
    assert catalog() == before  # nothing stored, built or left half-built
